"""The unsubscribe and preferences pages end to end: the public app on a real port against the
real ledger (SQLite and PostgreSQL).

A mail client's one-click POST (RFC 8058) unsubscribes at once, scoped to the token's
(category, partner), audited with source `one-click`; a bad token or an oversized body changes
nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

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

    async def suppressed(self) -> list[tuple[str, str, str, str]]:
        entries = await SuppressionList(self.ledger).entries()
        return [(e.address, e.scope, e.reason, e.source) for e in entries]

    def counted(self, name: str, **labels: str) -> float:
        return sample_sum(self.metrics.registry, name, **labels)


@pytest.fixture
async def pages(ledger: SqlLedger) -> AsyncIterator[Pages]:
    settings = Settings(
        public_http_port=0,
        public_base_url="https://herald.example",
        unsubscribe_keys=KEYS,
    )
    metrics = Metrics()
    app = public_app_for(settings, ConfigFile(), ledger, metrics)
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
