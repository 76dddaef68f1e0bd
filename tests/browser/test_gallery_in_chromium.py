"""The gallery in a real browser: headless Chromium (`tests/browser/conftest.py`), over HTTP
from a local server.

It opens the index and checks that every notification is listed, then opens every notification
page and checks that it and its HTML email render without console errors. Screenshots of the
index and of one page go to `build/screenshots/` (or `$HERALD_SCREENSHOTS`)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from herald.tools.gallery import GalleryPage, build_gallery
from tests import support
from tests.browser.conftest import SCREENSHOTS, console_errors, open_page


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
