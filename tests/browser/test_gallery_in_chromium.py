"""The gallery in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`,
installed by scripts/ensure-services.sh) driven by Selenium, over HTTP from a local server.

It opens the index and checks that every notification is listed, then opens every notification
page and checks that it and its HTML email render without console errors. Screenshots of the
index and of one page go to `build/screenshots/` (or `$HERALD_SCREENSHOTS`)."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from herald.tools.gallery import GalleryPage, build_gallery
from tests import support

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(
    os.environ.get("HERALD_SCREENSHOTS", Path(__file__).resolve().parents[2] / "build/screenshots")
)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[GalleryPage]]]:
    """The gallery, built and served on an ephemeral port."""
    root = tmp_path_factory.mktemp("gallery")
    pages = build_gallery(root, support.catalog(), support.templates(), support.renderer())
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", pages
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    for path in (CHROMIUM, CHROMEDRIVER):
        assert Path(path).exists(), f"{path} is missing: run scripts/ensure-services.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1100"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: WebDriver) -> list[str]:
    """Console messages at error level since the last call (reading the log empties it)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def open_page(driver: WebDriver, url: str) -> None:
    driver.get(url)
    driver.execute_script("return document.readyState")  # waits for the load event


def test_console_errors_are_seen(browser: WebDriver) -> None:
    """The check below is not vacuous: a page that logs an error is caught."""
    console_errors(browser)
    open_page(browser, "data:text/html,<script>console.error('broken')</script><p>x</p>")
    assert any("broken" in message for message in console_errors(browser))


def test_the_index_lists_every_notification(
    browser: WebDriver, site: tuple[str, list[GalleryPage]]
) -> None:
    base, _ = site
    console_errors(browser)
    open_page(browser, base + "index.html")
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.notification")
    listed = [str(row.get_attribute("data-notification")) for row in rows]
    assert sorted(listed) == sorted(spec.id for spec in support.catalog())
    assert all(row.is_displayed() for row in rows)
    summary = browser.find_element(By.ID, "summary").text
    assert summary.startswith("77 notification types")
    assert console_errors(browser) == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOTS / "gallery-index.png"))


def test_every_notification_page_renders_without_console_errors(
    browser: WebDriver, site: tuple[str, list[GalleryPage]]
) -> None:
    base, pages = site
    console_errors(browser)
    for page in pages:
        open_page(browser, base + page.path)
        assert browser.find_element(By.ID, "subject").text == page.subject
        assert browser.find_element(By.ID, "text-part").text.strip(), page.path
        frame = browser.find_element(By.ID, "html-part")
        assert frame.size["height"] > 300 and frame.size["width"] > 300
        browser.switch_to.frame(frame)
        try:
            masthead = browser.find_element(By.CSS_SELECTOR, "td.masthead")
            assert masthead.text == "Cloud Portal", page.path  # no logo: the name, as text
            assert browser.find_element(By.CSS_SELECTOR, "td.content").text.strip()
            assert browser.execute_script("return document.documentElement.lang").startswith(
                page.locale
            )
        finally:
            browser.switch_to.default_content()
        assert console_errors(browser) == [], page.path
    open_page(browser, base + "n/order_confirmation_new.de.html")
    assert browser.save_screenshot(str(SCREENSHOTS / "gallery-order_confirmation_new.de.png"))
