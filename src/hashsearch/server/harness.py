"""Driving a served index from outside: `hashsearch serve` as a child process, and its
web page in headless Chromium. The browser test, `benchmarks/screenshot.py` and
`benchmarks/load.py` share these, so they test and measure the server as users run it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from hashsearch.errors import HashsearchError

CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",  # as root in a container Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
)


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """`hashsearch serve` on a free loopback port, from start to healthy to stopped.

    >>> with ServerProcess(Path("runs/saeh48-index")) as server:  # doctest: +SKIP
    ...     urllib.request.urlopen(server.url + "/info")
    """

    def __init__(
        self, index_dir: Path, args: Sequence[str] = (), startup_timeout: float = 120.0
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable,
            "-c",
            "from hashsearch.cli import main; main()",
            "serve",
            "--index",
            str(index_dir),
            "--port",
            str(self.port),
            *args,
        ]
        self.startup_timeout = startup_timeout
        self.log = tempfile.TemporaryFile()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server is not running"
        return self.process.pid

    def __enter__(self) -> ServerProcess:
        self.process = subprocess.Popen(self.command, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def wait_healthy(self) -> None:
        """Return once GET /health answers 200; raise if the server dies or takes too long."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise HashsearchError(
                    f"the server exited with status {self.process.returncode}: {self.log_tail()}"
                )
            if self.healthy():
                return
            time.sleep(0.2)
        raise HashsearchError(f"the server was not healthy within {self.startup_timeout:.0f} s")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def log_tail(self, chars: int = 2000) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def headless_chromium(width: int = 1280, height: int = 900) -> Any:
    """A Selenium WebDriver on the system's Chromium and chromedriver (no downloads)."""
    from selenium import webdriver

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        raise HashsearchError(
            "headless Chromium needs chromium and chromedriver on PATH; on Debian: "
            "apt-get install -y chromium chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (*CHROMIUM_ARGS, f"--window-size={width},{height}"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))


def search_in_page(driver: Any, image: Path, timeout: float = 60.0) -> list[dict[str, str]]:
    """Upload `image` through the open page's file input; the grid it shows, best first.

    Waits until the page has answered and every result image has loaded.
    """
    from selenium.webdriver.common.by import By

    previous = driver.find_element(By.TAG_NAME, "body").get_attribute("data-searches") or "0"
    driver.find_element(By.ID, "file-input").send_keys(str(image.resolve()))
    return wait_for_results(driver, int(previous) + 1, timeout)


def wait_for_results(driver: Any, searches: int, timeout: float = 60.0) -> list[dict[str, str]]:
    """The grid once the page finished its `searches`-th search and loaded its images."""
    from selenium.webdriver.support.ui import WebDriverWait

    done = (
        "const body = document.body;"
        "return body.dataset.state !== 'searching' && Number(body.dataset.searches) >= arguments[0]"
        " && [...document.querySelectorAll('#results img')]"
        ".every(img => img.complete && img.naturalWidth > 0);"
    )
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(done, searches))
    state = driver.execute_script("return document.body.dataset.state")
    if state != "done":
        status = driver.execute_script("return document.getElementById('status').textContent")
        raise HashsearchError(f"the page shows an error: {status}")
    rows = "return [...document.querySelectorAll('#results .result')].map(r => ({...r.dataset}))"
    return list(driver.execute_script(rows))
