"""Rows 20-24 of the fault matrix, end to end: `herald run` against a mail server in the test
process that greets late, drops the connection after taking a message, closes idle pooled
connections, offers no STARTTLS, or refuses one recipient of several."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from herald.ledger.store import SqlLedger
from tests.faults.harness import (
    HeraldProcess,
    Mailbox,
    account,
    account_expected,
    assert_no_loss,
    dead_letters,
    expected_emails,
    metric,
    order_events,
    poll,
    publish,
    quote_events,
    run_id,
    sqlite_url,
    start_herald,
    stop_herald,
    wait_for_mail,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def test_smtp_slow_to_greet_then_normal(
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    """Row 20: the next 6 connections get their 220 after 5 s (Herald's timeout is 3 s), and
    5 DATA replies take 2 s; then the server is normal."""
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    mailbox.greeting_delays = [5.0] * 6
    mailbox.data_delays = [2.0] * 5
    herald = await start_herald(
        vhost_url, mailbox, sqlite_url(tmp_path), tmp_path, unused_tcp_port_factory()
    )
    try:
        events = quote_events(60, run_id())
        await publish(vhost_url, events)
        await wait_for_mail(mailbox, len(events), timeout=120)
        counts = account(events, mailbox)
        report("SMTP slow to greet (5 s > 3 s timeout), then normal", counts)
        assert mailbox.greeting_delays == [], "every slow greeting was met"
        assert_no_loss(counts)
    finally:
        await stop_herald(herald)
        mailbox.stop()


async def test_smtp_drops_after_data_before_250(
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    """Row 21: the server takes 5 messages and hangs up before its 250. Ambiguous: Herald
    resends each later through the broker with the same Message-ID (at most 2 copies)."""
    mailbox = Mailbox(unused_tcp_port_factory(), drop_after_data=5)
    mailbox.start()
    herald = await start_herald(
        vhost_url, mailbox, sqlite_url(tmp_path), tmp_path, unused_tcp_port_factory()
    )
    try:
        events = quote_events(50, run_id())
        await publish(vhost_url, events)
        await wait_for_mail(mailbox, len(events), timeout=90)
        await poll(lambda: len(mailbox.received) >= len(events) + 5, 30)
        counts = account(events, mailbox)
        report("SMTP drops after DATA, before 250 (5 times)", counts)
        assert_no_loss(counts, duplicates_allowed=True)
        assert counts.duplicated == 5, "each ambiguous send was resent once"
    finally:
        await stop_herald(herald)
        mailbox.stop()


async def test_idle_pooled_connections_closed_by_the_server(
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    """Row 22: the server closes connections idle for 1 s; the next batch finds its pooled
    connections dead, reconnects before DATA, and sends each email once."""
    mailbox = Mailbox(unused_tcp_port_factory(), idle_timeout=1.0)
    mailbox.start()
    herald = await start_herald(
        vhost_url, mailbox, sqlite_url(tmp_path), tmp_path, unused_tcp_port_factory()
    )
    try:
        # Given a first batch sent over pooled connections, then left idle until the server
        # closed them
        run = run_id()
        first, second = quote_events(30, run)[:15], quote_events(30, run)[15:]
        await publish(vhost_url, first)
        await wait_for_mail(mailbox, len(first), timeout=60)
        assert await poll(lambda: mailbox.timed_out >= 1, 10)
        closed = mailbox.timed_out
        # When the next batch comes
        await publish(vhost_url, second)
        await wait_for_mail(mailbox, len(first) + len(second), timeout=60)
        # Then every email arrived once
        counts = account(first + second, mailbox)
        report("idle pooled SMTP connections closed by the server", counts, f"closed={closed}")
        assert_no_loss(counts)
    finally:
        await stop_herald(herald)
        mailbox.stop()


async def test_starttls_required_but_not_offered(
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    """Row 23: HERALD_SMTP_STARTTLS=true against a server that does not offer STARTTLS (a
    stripped EHLO): nothing is sent in plaintext, nothing is dead-lettered or failed, and
    Herald says so: consuming pauses (a configuration fault, like a refused login), /readyz is
    red, the events wait in their queue."""
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    port = unused_tcp_port_factory()
    herald = await start_herald(
        vhost_url,
        mailbox,
        sqlite_url(tmp_path),
        tmp_path,
        port,
        HERALD_SMTP_STARTTLS="true",
    )
    try:
        events = quote_events(10, run_id())
        await publish(vhost_url, events)
        # Herald tried, found no STARTTLS, and paused: /readyz red, the auth/configuration
        # fault counted, consuming paused
        assert await poll(lambda: mailbox.connections >= 1, 30)
        assert await poll(_readyz_is(herald, 503), 30), "/readyz stayed green"
        assert await metric(herald, "herald_consuming_paused") == 1
        assert (await metric(herald, "herald_smtp_auth_failures_total") or 0) >= 1
        counts = account(events, mailbox)
        report(
            "STARTTLS required, server offers none",
            counts,
            f"connections={mailbox.connections} plaintext_messages={len(mailbox.received)}",
        )
        assert mailbox.received == [], "no plaintext email"
        assert await dead_letters(vhost_url) == []
        assert counts.lost == len(events)  # waiting in the broker, not lost
        log = (tmp_path / f"herald-{port}.log").read_text()
        assert "STARTTLS is required but 127.0.0.1" in log
    finally:
        await stop_herald(herald)
        mailbox.stop()


def _readyz_is(herald: HeraldProcess, status: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await herald.readyz() == status

    return check


async def test_one_recipient_of_several_refused(
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    """Row 24: order confirmations go to two people each; the server refuses one of them
    (550 at RCPT). The other gets the email once; the refused one is recorded as failed with
    the code, not retried."""
    run = run_id()
    events = order_events(20, run)
    expected = expected_emails(events)
    refused = {address for address in expected if address.startswith("jonas.")}
    assert refused and len(refused) < len(expected)
    mailbox = Mailbox(
        unused_tcp_port_factory(),
        refuse=lambda address: "550 5.1.1 no such mailbox" if address in refused else None,
    )
    mailbox.start()
    herald = await start_herald(
        vhost_url, mailbox, sqlite_url(tmp_path), tmp_path, unused_tcp_port_factory()
    )
    try:
        await publish(vhost_url, events)
        await wait_for_mail(mailbox, len(expected) - len(refused), timeout=60)
        ledger = await SqlLedger.open(sqlite_url(tmp_path))
        outcomes: list[str] = []
        try:
            for event in events:
                for record in await ledger.deliveries_of_event(event["source"], event["id"]):
                    outcomes.append(record.status)
                    if record.status == "failed":
                        assert record.attempts == 1 and "550" in (record.detail or "")
        finally:
            await ledger.close()
        counts = account_expected(expected, mailbox, failed=refused)
        report(
            "one recipient of two refused (550)",
            counts,
            f"recorded_sent={outcomes.count('sent')} recorded_failed={outcomes.count('failed')}",
        )
        assert outcomes.count("failed") == len(refused)
        assert outcomes.count("sent") == len(expected) - len(refused)
        assert_no_loss(counts)
    finally:
        await stop_herald(herald)
        mailbox.stop()
