"""Headless Chromium for the browser tests: Debian's `chromium` and `chromium-driver`
(installed by scripts/ensure-services.sh) driven by Selenium.

`browser` is one English-speaking Chromium per module; `chromium(language=...)` starts another
(e.g. a German-speaking one: `--lang` and `intl.accept_languages`, so pages see that
`Accept-Language`), with the performance log on when a test checks which requests a page made.
Screenshots go to `build/screenshots/` (or `$HERALD_SCREENSHOTS`)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.remote.webdriver import WebDriver

from herald.service.app import Service
from tests.conftest import SmtpServer
from tests.integration.conftest import Broker
from tests.integration.conftest import broker as broker  # a fixture, for the pages' tests
from tests.unsubscribe import unsubscribing_herald

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(
    os.environ.get("HERALD_SCREENSHOTS", Path(__file__).resolve().parents[2] / "build/screenshots")
)


def chromium(language: str | None = None, *, performance_log: bool = False) -> WebDriver:
    """A new headless Chromium (quit it when done). `language`: e.g. `de`, sent first in
    `Accept-Language`. `performance_log`: record the DevTools network events
    (`requested_urls`)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        assert Path(path).exists(), f"{path} is missing: run scripts/ensure-services.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1100"):
        options.add_argument(argument)
    if language is not None:
        options.add_argument(f"--lang={language}")
        options.add_experimental_option("prefs", {"intl.accept_languages": f"{language},en"})
    logging = {"browser": "ALL"}
    if performance_log:
        logging["performance"] = "ALL"
    options.set_capability("goog:loggingPrefs", logging)
    driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
async def unsubscribing_service(
    amqp_url: str, smtp_server: SmtpServer, tmp_path: Path, broker: Broker
) -> AsyncIterator[Service]:
    """Herald on the real broker with its unsubscribe pages (`tests/unsubscribe.py`)."""
    async with unsubscribing_herald(amqp_url, smtp_server, tmp_path) as herald:
        yield herald


def console_errors(driver: WebDriver) -> list[str]:
    """Console messages at error level since the last call (reading the log empties it)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def requested_urls(driver: WebDriver) -> list[str]:
    """Every URL the browser asked for since the last call (documents, styles, images, fonts,
    favicons...), from the performance log of a driver started with `performance_log=True`."""
    urls: list[str] = []
    for entry in driver.get_log("performance"):
        message: dict[str, Any] = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def open_page(driver: WebDriver, url: str) -> None:
    driver.get(url)
    driver.execute_script("return document.readyState")  # waits for the load event
