"""The unsubscribe and preferences pages end to end: the public app on a real port against the
real ledger (SQLite and PostgreSQL).

A mail client's one-click POST (RFC 8058) unsubscribes at once, scoped to the token's
(category, partner), audited with source `one-click`; a GET never changes anything; the page's
button unsubscribes with source `page`; the preferences page lists the partner's lists holding
the address, each with its state, and turns them off and on again (Post/Redirect/Get). Pages
speak German by `Accept-Language`, carry the partner's colour, the security headers and no
external URL; a bad, tampered, expired or other key's token gets the generic 400 and an
oversized body a 413, changing nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from herald.catalog.optional import UnsubscribeScope
from herald.ledger.store import SqlLedger
from herald.ledger.suppressions import SuppressionList
from herald.renderers.unsubscribe_tokens import UnsubscribeTokens
from herald.service.http import bound_port, start_http
from herald.service.metrics import Metrics
from herald.service.public_http import public_app_for
from herald.service.settings import ConfigFile, Settings
from tests.support import sample_sum

pytestmark = pytest.mark.integration

KEYS = "k2:" + "s" * 40
OTHER_KEYS = "k2:" + "o" * 40
ADDRESS = "Mia@Northwind.example"
PARTNER = "org-1204"
SCOPE = UnsubscribeScope("renewals", PARTNER)
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
BRAND_COLOUR = "#0a5c44"
PALE_PARTNER = "org-pale"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Pages:
    base: str
    http: aiohttp.ClientSession
    ledger: SqlLedger
    metrics: Metrics
    tokens: UnsubscribeTokens

    def token(self, scope: UnsubscribeScope = SCOPE, address: str = ADDRESS) -> str:
        return self.tokens.issue(address, scope)

    async def post(
        self, path: str, data: object, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        async with self.http.post(
            self.base + path, data=data, headers=headers, allow_redirects=False
        ) as response:
            return response.status, await response.text()

    async def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str, dict[str, str]]:
        async with self.http.get(self.base + path, headers=headers) as response:
            return response.status, await response.text(), dict(response.headers)

    async def suppressed(self) -> list[tuple[str, str, str, str]]:
        entries = await SuppressionList(self.ledger).entries()
        return [(e.address, e.scope, e.reason, e.source) for e in entries]

    def counted(self, name: str, **labels: str) -> float:
        return sample_sum(self.metrics.registry, name, **labels)


@pytest.fixture
async def pages(ledger: SqlLedger) -> AsyncIterator[Pages]:
    config = ConfigFile.model_validate(
        {
            "recipients": {
                PARTNER: {
                    "orders": {"emails": ["ops@example.com", "Mia@NORTHWIND.example"]},
                    "domains": {"emails": ["someone@northwind.example"]},
                }
            },
            "brand": {
                "partners": {
                    PARTNER: {"name": "BluePeak AV", "primary_colour": BRAND_COLOUR},
                    PALE_PARTNER: {"name": "Pale & Co", "primary_colour": "#ffe066"},
                }
            },
        }
    )
    settings = Settings(
        public_http_port=0,
        public_base_url="https://herald.example",
        unsubscribe_keys=KEYS,
    )
    metrics = Metrics()
    app = public_app_for(settings, config, ledger, metrics)
    assert app is not None
    runner = await start_http(app, "127.0.0.1", 0)
    async with aiohttp.ClientSession() as http:
        yield Pages(
            f"http://127.0.0.1:{bound_port(runner)}",
            http,
            ledger,
            metrics,
            UnsubscribeTokens.from_setting(KEYS),
        )
    await runner.cleanup()


async def test_one_click_post_unsubscribes_from_the_category_of_the_partner(pages: Pages) -> None:
    # When a mail client posts RFC 8058's body, twice
    token = pages.token()
    assert await pages.post(f"/unsubscribe/{token}", ONE_CLICK) == (200, "unsubscribed")
    assert await pages.post(f"/unsubscribe/{token}", ONE_CLICK) == (200, "unsubscribed")

    # Then one scoped suppression, audited once with its source, counted once
    assert await pages.suppressed() == [
        ("Mia@northwind.example", SCOPE.scope, "unsubscribed", "one-click")
    ]
    (audit,) = await SuppressionList(pages.ledger).audit()
    assert (audit.action, audit.scope, audit.source) == ("add", SCOPE.scope, "one-click")
    assert await pages.ledger.unsubscribed_scopes(ADDRESS) == [SCOPE.scope]
    assert pages.counted("herald_unsubscribes_total", category="renewals", source="one-click") == 1


async def test_one_click_as_multipart_form_data(pages: Pages) -> None:
    form = aiohttp.FormData()
    form.add_field("List-Unsubscribe", "One-Click")
    form.add_field("padding", "x")
    assert (await pages.post(f"/unsubscribe/{pages.token()}", form))[0] == 200
    assert len(await pages.suppressed()) == 1


async def test_a_post_without_the_one_click_field_changes_nothing(pages: Pages) -> None:
    status, _ = await pages.post(f"/unsubscribe/{pages.token()}", {"other": "1"})
    assert status == 400
    assert await pages.suppressed() == []


async def test_an_oversized_body_is_refused(pages: Pages) -> None:
    body = {"List-Unsubscribe": "One-Click", "pad": "x" * 10_000}
    status, _ = await pages.post(f"/unsubscribe/{pages.token()}", body)
    assert status == 413
    assert await pages.suppressed() == []


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda token: token[:-6] + ("AAAAAA" if token[-6:] != "AAAAAA" else "BBBBBB"), None),
        (lambda token: "nokey." + token.partition(".")[2], "unknown_key"),
        (lambda token: "garbage", "malformed"),
        (lambda token: token + "x" * 600, "malformed"),
    ],
)
async def test_a_bad_token_gets_the_generic_400(
    pages: Pages, mangle: object, reason: str | None
) -> None:
    token = mangle(pages.token())  # type: ignore[operator]
    status, text = await pages.post(f"/unsubscribe/{token}", ONE_CLICK)
    assert status == 400
    assert "not valid or has expired" in text
    assert "northwind" not in text.lower()
    assert await pages.suppressed() == []
    if reason is not None:
        assert pages.counted("herald_unsubscribe_token_rejected_total", reason=reason) == 1


async def test_another_keys_token_is_invalid(pages: Pages) -> None:
    token = UnsubscribeTokens.from_setting(OTHER_KEYS).issue(ADDRESS, SCOPE)
    status, _ = await pages.post(f"/unsubscribe/{token}", ONE_CLICK)
    assert status == 400
    assert pages.counted("herald_unsubscribe_token_rejected_total", reason="invalid") == 1
    assert await pages.suppressed() == []


def assert_page_headers(headers: dict[str, str]) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value
    csp = headers["Content-Security-Policy"]
    for directive in (
        "default-src 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp and "script-src" not in csp


def assert_self_contained(html: str) -> None:
    """No script, and no src/href/action/url() leaving the page's own origin."""
    assert "<script" not in html.lower()
    references = re.findall(r"""(?:src|href|action)\s*=\s*["']([^"']*)["']""", html, re.I)
    references += re.findall(r"url\(([^)]*)\)", html, re.I)
    for reference in references:
        assert not re.match(r"\s*(?:[a-z][a-z0-9+.-]*:|//)", reference, re.I), reference


async def test_the_unsubscribe_page_names_the_list_and_changes_nothing(pages: Pages) -> None:
    token = pages.token()
    # When the page is fetched (as a link scanner would), twice
    for _ in range(2):
        status, html, headers = await pages.get(f"/unsubscribe/{token}")
        assert status == 200
    # Then it names the partner's list, has one button posting to itself, changes nothing
    assert "BluePeak AV’s renewal alert list" in html
    assert '<html lang="en">' in html
    assert html.count("<button") == 1 and '<form method="post">' in html
    assert f'href="../preferences/{token}"' in html
    assert_page_headers(headers)
    assert_self_contained(html)
    assert headers["Content-Type"].startswith("text/html")
    assert await pages.suppressed() == []
    assert pages.counted("herald_unsubscribes_total") == 0


async def test_the_page_button_unsubscribes_with_source_page(pages: Pages) -> None:
    token = pages.token()
    status, html = await pages.post(f"/unsubscribe/{token}", {"action": "unsubscribe"})
    assert status == 200
    assert "You are unsubscribed" in html
    assert await pages.suppressed() == [
        ("Mia@northwind.example", SCOPE.scope, "unsubscribed", "page")
    ]
    assert pages.counted("herald_unsubscribes_total", category="renewals", source="page") == 1


async def test_preferences_list_the_partners_lists_and_toggle_them(pages: Pages) -> None:
    token = pages.token()
    # Given the address is on the partner's configured orders list too (domain case aside)
    status, html, headers = await pages.get(f"/preferences/{token}")
    assert status == 200
    assert_page_headers(headers)
    assert_self_contained(html)
    assert "Order confirmation list" in html and "Renewal alert list" in html
    assert "domain notification list" not in html.lower()  # not on that list
    assert html.count("<form") == 2 and html.count(">Subscribed<") == 2

    # When the orders list is turned off: 303 back to the page, shown off, suppressed
    status, _ = await pages.post(f"/preferences/{token}", {"category": "orders", "state": "off"})
    assert status == 303
    status, html, _ = await pages.get(f"/preferences/{token}")
    assert html.count(">Unsubscribed<") == 1 and html.count(">Subscribed<") == 1
    assert "Subscribe again to the order confirmation list" in html
    orders = UnsubscribeScope("orders", PARTNER).scope
    assert await pages.suppressed() == [("Mia@northwind.example", orders, "unsubscribed", "page")]

    # And back on: the suppression is gone, both changes audited and counted
    status, _ = await pages.post(f"/preferences/{token}", {"category": "orders", "state": "on"})
    assert status == 303
    assert await pages.suppressed() == []
    actions = [(a.action, a.scope, a.source) for a in await SuppressionList(pages.ledger).audit()]
    assert sorted(actions) == [("add", orders, "page"), ("remove", orders, "page")]
    assert pages.counted("herald_unsubscribes_total", category="orders", source="page") == 1
    assert pages.counted("herald_resubscribes_total", category="orders", source="page") == 1


async def test_preferences_refuse_a_category_the_page_does_not_show(pages: Pages) -> None:
    token = pages.token()
    for fields in (
        {"category": "domains", "state": "off"},
        {"category": "renewals", "state": "maybe"},
        {"state": "off"},
    ):
        status, _ = await pages.post(f"/preferences/{token}", fields)
        assert status == 400
    assert await pages.suppressed() == []


async def test_pages_speak_german_by_accept_language_and_lang(pages: Pages) -> None:
    token = pages.token()
    german = {"Accept-Language": "fr-CH, de-AT;q=0.8, en;q=0.5"}
    _, html, _ = await pages.get(f"/unsubscribe/{token}", german)
    assert '<html lang="de">' in html
    assert "der Liste für Verlängerungshinweise von BluePeak AV" in html
    assert f'href="../preferences/{token}"' in html
    _, html, _ = await pages.get(f"/preferences/{token}", german)
    assert "E-Mail-Einstellungen" in html and "Angemeldet" in html
    _, html, _ = await pages.get(f"/preferences/{token}?lang=en", german)
    assert '<html lang="en">' in html
    _, html, _ = await pages.get(f"/unsubscribe/{token}?lang=de")
    assert f'href="../preferences/{token}?lang=de"' in html
    status, _ = await pages.post(
        f"/preferences/{token}?lang=de", {"category": "renewals", "state": "off"}
    )
    assert status == 303


async def test_pages_carry_the_brand_colour_or_a_readable_one(pages: Pages) -> None:
    _, html, _ = await pages.get(f"/unsubscribe/{pages.token()}")
    assert f"background: {BRAND_COLOUR}" in html and "BluePeak AV" in html
    pale = pages.token(UnsubscribeScope("renewals", PALE_PARTNER))
    _, html, _ = await pages.get(f"/unsubscribe/{pale}")
    assert "Pale &amp; Co" in html  # escaped
    assert "#ffe066" not in html  # white text on it would be unreadable: the default instead
    unbranded = pages.token(UnsubscribeScope("renewals", "org-other"))
    _, html, _ = await pages.get(f"/unsubscribe/{unbranded}")
    assert "the renewal alert list" in html and "Cloud Portal" in html


async def test_bad_tokens_get_the_generic_400_page(pages: Pages) -> None:
    expired = UnsubscribeTokens.from_setting(
        KEYS, clock=lambda: datetime.now(UTC) - timedelta(days=400)
    ).issue(ADDRESS, SCOPE)
    other_key = UnsubscribeTokens.from_setting(OTHER_KEYS).issue(ADDRESS, SCOPE)
    token = pages.token()
    tampered = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    for bad in (expired, other_key, tampered, "k2.nothing", "x" * 700):
        for path in (f"/unsubscribe/{bad}", f"/preferences/{bad}"):
            status, html, headers = await pages.get(path)
            assert status == 400
            assert "This link is not valid or has expired." in html
            assert "northwind" not in html.lower() and "BluePeak" not in html
            assert "expired" not in html.replace("has expired", "")
            assert_page_headers(headers)
            status, _ = await pages.post(path, {"category": "renewals", "state": "off"})
            assert status == 400
    assert await pages.suppressed() == []
    assert pages.counted("herald_unsubscribe_token_rejected_total", reason="expired") == 4
    assert pages.counted("herald_unsubscribe_token_rejected_total", reason="invalid") >= 8
    status, html, _ = await pages.get(f"/unsubscribe/{expired}", {"Accept-Language": "de"})
    assert "Dieser Link ist ungültig oder abgelaufen." in html
