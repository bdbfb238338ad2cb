"""The web page end to end: `hashsearch serve` in a process, driven by headless Chromium.

Needs the system's chromium and chromedriver (Debian: chromium, chromium-driver);
without them the test fails, it does not skip.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from hashsearch import api
from hashsearch.server.harness import (
    ServerProcess,
    headless_chromium,
    search_in_page,
    wait_for_results,
)

PAGE_TOP = 24  # the page's default number of results


@pytest.fixture(scope="module")
def answered_query(served_index, query_files) -> tuple[Path, list[dict[str, Any]]]:
    """The first test image whose results have its class as their most common label.

    The tests' 2-epoch model is weak (for about a fifth of the test images the most
    common label of the top 10 is the query's class, measured), so the test queries
    an image it answers well: it checks the page, not the model.
    """
    found = api.search_images(served_index, query_files, top=PAGE_TOP)
    for path, query in zip(query_files, found, strict=True):
        counts = Counter(hit["label"] for hit in query["results"]).most_common(2)
        if counts[0][0] == path.parent.name and (len(counts) == 1 or counts[0][1] > counts[1][1]):
            return path, query["results"]
    pytest.fail("no test image has its class as the most common label of its results")


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


def test_the_page_searches_an_upload_and_switches_reranking(served_index, answered_query, tmp_path):
    query, expected = answered_query
    with ServerProcess(served_index, ["--no-access-log"]) as server:
        driver = headless_chromium()
        try:
            driver.get(server.url + "/")
            WebDriverWait(driver, 30).until(
                lambda d: "16 bits" in d.find_element(By.ID, "index-info").text
            )
            shown = search_in_page(driver, query)
            assert ids(shown) == ids(expected)
            labels = Counter(row["label"] for row in shown)
            assert labels.most_common(1)[0][0] == query.parent.name, labels
            assert driver.find_element(By.ID, "query-image").get_attribute("naturalWidth") == "32"
            stages = driver.find_elements(By.CSS_SELECTOR, "#timings [data-stage]")
            assert [s.get_attribute("data-stage") for s in stages] == [
                "decode", "encode", "stage1", "stage2", "total"
            ]  # fmt: skip
            assert all(float(s.get_attribute("data-ms")) >= 0 for s in stages)
            driver.save_screenshot(str(tmp_path / "page.png"))

            driver.find_element(By.ID, "rerank-toggle").click()
            plain = wait_for_results(driver, searches=2)
            hamming_only = api.search_images(served_index, [query], top=PAGE_TOP, rerank="none")
            assert ids(plain) == ids(hamming_only[0]["results"])
            scores = driver.find_elements(By.CSS_SELECTOR, "#results .score")
            assert len(scores) == PAGE_TOP and all(s.text == "" for s in scores)
        finally:
            driver.quit()
    assert (tmp_path / "page.png").stat().st_size > 10_000
