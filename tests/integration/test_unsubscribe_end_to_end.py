"""One-click unsubscribe end to end (issue 19), on the real broker, a SQLite ledger, an SMTP
server and Herald's public listener on a real port.

A renewal alert (`plan_will_be_renewed`) reaches the partner's `renewals` list address, with
`List-Unsubscribe` and `List-Unsubscribe-Post` and the footer line, and the two account
managers by role, without them. A GET of the unsubscribe and preferences links, and a POST with
a forged token, change nothing. The POST a mail client makes (RFC 8058) unsubscribes the list
address: the next alert records `blocked` for it and still mails the account managers. After
`herald suppressions resubscribe` the alert after that reaches it again. The accounting
identity holds after each event."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from herald.service.app import Service
from tests.conftest import SmtpServer
from tests.integration.conftest import Broker, metric
from tests.integration.test_suppressions_end_to_end import (
    deliveries,
    herald_cli,
    publish_and_settle,
)
from tests.unsubscribe import (
    ACCOUNT_MANAGER,
    CATEGORY,
    LISTED,
    PARTNER,
    RENEWAL,
    SCOPE,
    VENDOR_MANAGER,
    base_url,
    by_recipient,
    html_links,
    list_unsubscribe_url,
    preferences_link,
    text_of,
    unsubscribing_herald,
)

pytestmark = pytest.mark.integration

MANDATORY = (ACCOUNT_MANAGER, VENDOR_MANAGER)
# What RFC 8058 section 3.1 has a mail client send: nothing else (no cookies, no credentials).
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
async def unsubscribing_service(
    amqp_url: str, smtp_server: SmtpServer, tmp_path: Path, broker: Broker
) -> AsyncIterator[Service]:
    async with unsubscribing_herald(amqp_url, smtp_server, tmp_path) as herald:
        yield herald


async def renewal_alert(
    service: Service, broker: Broker, smtp_server: SmtpServer
) -> tuple[dict[str, Any], dict[str, EmailMessage]]:
    """Publish a renewal alert and settle it (the identity checked); the event and the emails
    it caused, by recipient."""
    before = len(smtp_server.received)
    document = await publish_and_settle(service, broker, RENEWAL)
    return document, by_recipient(smtp_server.received[before:])


async def one_click(url: str) -> tuple[int, str]:
    """POST exactly as a mail client does for one-click (RFC 8058): a fresh client without
    cookies, the form body, no redirects followed."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        response = await client.post(
            url,
            data=ONE_CLICK_BODY.encode(),
            headers={"Content-Type": FORM},
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=10),
        )
        async with response:
            return response.status, await response.text()


async def get(url: str) -> int:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        response = await client.get(
            url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=10)
        )
        async with response:
            await response.read()
            return response.status


async def suppressions_of(database_url: str, address: str) -> list[dict[str, Any]]:
    code, stdout, stderr = await herald_cli(
        database_url, "suppressions", "list", "--address", address, "--format", "json"
    )
    assert code == 0, stderr
    found: list[dict[str, Any]] = json.loads(stdout)
    return found


def forged(url: str) -> str:
    """The URL with one character of its token's Fernet part changed (in the middle, so it
    is never only base64 padding bits)."""
    prefix, _, token = url.rpartition("/")
    key_id, dot, body = token.partition(".")
    assert dot and len(body) > 40, f"not a key id and a Fernet token: {token!r}"
    middle = len(body) // 2
    changed = "B" if body[middle] == "A" else "A"
    return f"{prefix}/{key_id}.{body[:middle]}{changed}{body[middle + 1 :]}"


async def test_one_click_unsubscribes_the_list_address_and_only_it(
    unsubscribing_service: Service, broker: Broker, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    service = unsubscribing_service
    database_url = f"sqlite:///{tmp_path}/herald.db"
    base = base_url(service)

    # Given a renewal alert mailed to the list address and to the account managers by role
    _, mails = await renewal_alert(service, broker, smtp_server)
    assert set(mails) == {LISTED, *MANDATORY}
    listed = mails[LISTED]
    url = list_unsubscribe_url(listed)
    assert url.startswith(f"{base}/unsubscribe/")
    assert str(listed["List-Unsubscribe-Post"]) == ONE_CLICK_BODY
    preferences = preferences_link(listed, base)
    assert preferences.startswith(f"{base}/preferences/")
    assert preferences in text_of(listed)
    for address in MANDATORY:  # mandatory mail: neither header nor footer line
        mail = mails[address]
        assert mail["List-Unsubscribe"] is None and mail["List-Unsubscribe-Post"] is None
        assert not [href for href in html_links(mail) if href.startswith(base)]
        assert base not in text_of(mail)
        assert "unsubscribe" not in text_of(mail).lower()

    # When the links are only opened (a GET, as a link scanner or a preview does), and a
    # forged token is POSTed
    assert await get(url) == 200
    assert await get(preferences) == 200
    status, _ = await one_click(forged(url))
    assert status == 400

    # Then nothing is unsubscribed, and the next alert still reaches the list address
    assert await suppressions_of(database_url, LISTED) == []
    _, mails = await renewal_alert(service, broker, smtp_server)
    assert set(mails) == {LISTED, *MANDATORY}

    # When the mail client makes the one-click POST (twice: clients retry; it is idempotent)
    status, _ = await one_click(url)
    assert status == 200
    status, _ = await one_click(url)
    assert status == 200

    # Then the list address is unsubscribed from this partner's renewal alerts
    (entry,) = await suppressions_of(database_url, LISTED)
    assert (entry["reason"], entry["scope"], entry["source"]) == (
        "unsubscribed",
        SCOPE,
        "one-click",
    )

    # And the next alert reaches the account managers and records `blocked` for the list
    blocked_before = metric(service, "herald_notifications_total", outcome="blocked")
    document, mails = await renewal_alert(service, broker, smtp_server)
    assert set(mails) == set(MANDATORY)
    records = await deliveries(service, document)
    assert {address: records[address].status for address in (LISTED, *MANDATORY)} == {
        LISTED: "blocked",
        ACCOUNT_MANAGER: "sent",
        VENDOR_MANAGER: "sent",
    }
    assert metric(service, "herald_notifications_total", outcome="blocked") == blocked_before + 1
    code, stdout, stderr = await herald_cli(
        database_url, "deliveries", "find", "--event-id", document["id"], "--format", "json"
    )
    assert code == 0, stderr
    found = {row["recipient"]: row for row in json.loads(stdout)}
    assert found[LISTED]["status"] == "blocked"
    assert found[LISTED]["detail"].startswith(f"suppressed: unsubscribed in {SCOPE} (one-click")
    suppression = found[LISTED]["suppression"]
    assert (suppression["reason"], suppression["scope"], suppression["source"]) == (
        "unsubscribed",
        SCOPE,
        "one-click",
    )
    assert {found[address]["status"] for address in MANDATORY} == {"sent"}

    # When the operator resubscribes it (the preferences page's way is the browser test's)
    code, _, stderr = await herald_cli(
        database_url,
        "suppressions",
        "resubscribe",
        LISTED,
        "--category",
        CATEGORY,
        "--partner",
        PARTNER,
    )
    assert code == 0, stderr
    assert await suppressions_of(database_url, LISTED) == []

    # Then the alert after that reaches it again, with a link that works
    _, mails = await renewal_alert(service, broker, smtp_server)
    assert set(mails) == {LISTED, *MANDATORY}
    assert list_unsubscribe_url(mails[LISTED]).startswith(f"{base}/unsubscribe/")
