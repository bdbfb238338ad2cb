"""Screenshot of the web page answering one query, for docs/serve-screenshot.png.

Starts `hashsearch serve` on the index, opens the page in headless Chromium (the
system's chromium and chromium-driver), uploads the query through the file input,
waits for the grid and its images, and saves the whole page:

    hashsearch index --run runs/bench/full-48b-seed0 --data ../shared/data/cifar10-jpg.tar.gz \
        --out /tmp/ix48
    tar -xzf ../shared/data/cifar10-jpg.tar.gz -C /tmp test/cat/0001.jpg
    python benchmarks/screenshot.py --index /tmp/ix48 --data ../shared/data/cifar10-jpg.tar.gz \
        --query /tmp/test/cat/0001.jpg --out docs/serve-screenshot.png
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from hashsearch.server.harness import ServerProcess, headless_chromium, search_in_page


def fit_window_to_page(driver: Any, width: int) -> None:
    """Make the window as tall as the page, so the screenshot holds the whole grid."""
    chrome, page = driver.execute_script(
        "return [window.outerHeight - window.innerHeight, document.body.scrollHeight]"
    )
    driver.set_window_size(width, chrome + page)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--query", type=Path, required=True, help="the query image file")
    parser.add_argument("--data", help="the index run's data set, if it moved")
    parser.add_argument("--out", type=Path, default=Path("docs/serve-screenshot.png"))
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    serve_args = ["--no-access-log", *(["--data", args.data] if args.data else [])]
    with ServerProcess(args.index, serve_args) as server:
        for _ in range(3):  # so that the page shows warm timings, not the first request's
            httpx.post(server.url + "/search", files={"image": args.query.read_bytes()})
        driver = headless_chromium(args.width)
        try:
            driver.get(server.url + "/")
            results = search_in_page(driver, args.query)
            fit_window_to_page(driver, args.width)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
    labels = Counter(result["label"] for result in results)
    print(f"{args.out}: {len(results)} results for {args.query}, labels {dict(labels)}")


if __name__ == "__main__":
    main()
