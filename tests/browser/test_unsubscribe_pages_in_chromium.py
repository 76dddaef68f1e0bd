"""The unsubscribe and preferences pages (issue 19) in a German-speaking headless Chromium, from
the links of a real email: Herald runs on the real broker (`tests/unsubscribe.py`), mails a
renewal alert to the partner's `renewals` list over SMTP, and the browser opens the
`List-Unsubscribe` link, presses the button and sees the confirmation; then opens the footer's
preferences link and turns the category back on. Each page is in German, in the partner's
colour, without console errors and without a request beyond Herald's own origin; the ledger's
suppression list follows each step. Screenshots go to the test's tmp dir and to
`build/screenshots/` (or `$HERALD_SCREENSHOTS`), as the gallery test's do."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from herald.service.app import Service
from tests.browser.conftest import (
    SCREENSHOTS,
    chromium,
    console_errors,
    open_page,
    requested_urls,
)
from tests.conftest import SmtpServer
from tests.integration.conftest import Broker
from tests.integration.test_unsubscribe_end_to_end import renewal_alert, suppressions_of
from tests.unsubscribe import (
    BRAND_COLOUR,
    LISTED,
    SCOPE,
    base_url,
    list_unsubscribe_url,
    preferences_link,
)

pytestmark = pytest.mark.integration

T = TypeVar("T")

# The pages' markup this test relies on (templates/pages/, service/unsubscribe_pages.py): the
# German headings, the header in the partner's colour, the one button of the unsubscribe page's
# form (also in that colour), the confirmation's status line, and on the preferences page one
# item per list (`h2#list-<category>`, its state in `p.state`, its form labelled by the h2).
HEADINGS = {
    "page": "Abmelden",
    "confirmation": "Sie sind abgemeldet",
    "preferences": "E-Mail-Einstellungen",
    "preferences-after": "E-Mail-Einstellungen",
}
UNSUBSCRIBE_BUTTON = "form[method='post'] button[type='submit']"
CONFIRMATION = "[role='status']"
LIST_STATE = "//h2[@id='list-renewals']/following-sibling::p[contains(@class, 'state')]"
LIST_BUTTON = "form[method='post'][aria-labelledby='list-renewals'] button[type='submit']"
SUBSCRIBED, UNSUBSCRIBED = "Angemeldet", "Abgemeldet"


def rgb(colour: str) -> str:
    """`#7c2d12` as Selenium reads a computed colour: `rgba(124, 45, 18, 1)`."""
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red}, {green}, {blue}, 1)"


async def in_browser(step: Callable[..., T], *args: object) -> T:
    """Selenium blocks; Herald answers the browser on this event loop, so it runs meanwhile."""
    return await asyncio.to_thread(step, *args)


def check_page(driver: WebDriver, base: str, name: str, tmp_path: Path) -> None:
    """What every page must be: German, the partner's colour, no console error, no request
    beyond Herald's origin; and a screenshot of it."""
    assert driver.execute_script("return document.documentElement.lang").startswith("de"), name
    assert driver.find_element(By.TAG_NAME, "h1").text == HEADINGS[name]
    header = driver.find_element(By.TAG_NAME, "header")
    assert header.value_of_css_property("background-color") == rgb(BRAND_COLOUR), name
    # The browser's own favicon request is no error of the page (the pages name no icon).
    errors = [error for error in console_errors(driver) if f"{base}/favicon.ico " not in error]
    assert errors == [], name
    foreign = [
        url
        for url in requested_urls(driver)
        if not url.startswith(f"{base}/") and not url.startswith("data:")
    ]
    assert foreign == [], name
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for folder in (tmp_path, SCREENSHOTS):
        assert driver.save_screenshot(str(folder / f"unsubscribe-{name}.de.png"))


def submit(driver: WebDriver, button: WebElement) -> None:
    """Press a form's button and wait for the page it loads."""
    old = driver.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(driver, 10).until(lambda d: not _attached(old))
    driver.execute_script("return document.readyState")


def _attached(element: WebElement) -> bool:
    try:
        element.is_enabled()
    except Exception:
        return False
    return True


def unsubscribe_on_the_page(driver: WebDriver, url: str, base: str, tmp_path: Path) -> str:
    """Open the unsubscribe link, check the page, press its one button (in the partner's
    colour); the confirmation's status line."""
    console_errors(driver)
    requested_urls(driver)
    open_page(driver, url)
    check_page(driver, base, "page", tmp_path)
    (button,) = driver.find_elements(By.CSS_SELECTOR, UNSUBSCRIBE_BUTTON)
    assert button.text == "Abmelden"
    assert button.value_of_css_property("background-color") == rgb(BRAND_COLOUR)
    submit(driver, button)
    check_page(driver, base, "confirmation", tmp_path)
    assert driver.find_elements(By.CSS_SELECTOR, UNSUBSCRIBE_BUTTON) == []
    return str(driver.find_element(By.CSS_SELECTOR, CONFIRMATION).text)


def resubscribe_on_preferences(driver: WebDriver, url: str, base: str, tmp_path: Path) -> None:
    """Open the preferences link: the list is off; turn it back on: the list is on."""
    console_errors(driver)
    requested_urls(driver)
    open_page(driver, url)
    check_page(driver, base, "preferences", tmp_path)
    assert driver.find_element(By.XPATH, LIST_STATE).text == UNSUBSCRIBED
    (button,) = driver.find_elements(By.CSS_SELECTOR, LIST_BUTTON)
    submit(driver, button)
    check_page(driver, base, "preferences-after", tmp_path)
    assert driver.find_element(By.XPATH, LIST_STATE).text == SUBSCRIBED


async def test_a_german_reader_unsubscribes_and_turns_the_list_back_on(
    unsubscribing_service: Service, broker: Broker, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    service = unsubscribing_service
    database_url = f"sqlite:///{tmp_path}/herald.db"
    base = base_url(service)

    # Given a renewal alert received over SMTP by the partner's list address
    _, mails = await renewal_alert(service, broker, smtp_server)
    mail = mails[LISTED]
    unsubscribe_url, preferences_url = list_unsubscribe_url(mail), preferences_link(mail, base)
    driver = await in_browser(lambda: chromium("de", performance_log=True))
    try:
        # When its reader opens the List-Unsubscribe link and presses the button
        confirmation = await in_browser(
            unsubscribe_on_the_page, driver, unsubscribe_url, base, tmp_path
        )

        # Then the page confirms it (naming the partner) and the address is unsubscribed
        assert "Nordic" in confirmation, confirmation
        (entry,) = await suppressions_of(database_url, LISTED)
        assert (entry["reason"], entry["scope"], entry["source"]) == (
            "unsubscribed",
            SCOPE,
            "page",
        )

        # When the reader opens the footer's preferences link and turns the list back on
        await in_browser(resubscribe_on_preferences, driver, preferences_url, base, tmp_path)

        # Then the address is on the list again
        assert await suppressions_of(database_url, LISTED) == []
    finally:
        await in_browser(driver.quit)
