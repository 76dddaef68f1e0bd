"""Delivery guarantees under faults (issue 5): every scenario publishes a known set of events,
injects one fault against real processes, and must end with lost = 0 and unexpected = 0;
duplicates are allowed only in the window between the server's 250 and the ledger record, and
then carry the same Message-ID."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aio_pika
import httpx
import pytest

from herald.consumers.topology import declare
from tests.conftest import _rabbitmqctl
from tests.faults.conftest import MakeBroker
from tests.faults.harness import (
    HeraldProcess,
    Mailbox,
    account,
    assert_no_loss,
    herald_env,
    publish,
    quote_events,
    run_id,
    sqlite_url,
    start_herald,
    wait_for_mail,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def close_vhost_connections(vhost_url: str) -> int:
    """`close_connection` for every connection of the scenario's own vhost on the shared broker
    (never `close_all_connections`: other tests and engineers use that broker)."""
    vhost = unquote(urlsplit(vhost_url).path.lstrip("/"))
    closed = 0
    for line in _rabbitmqctl("-q", "list_connections", "vhost", "pid").splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[0] == vhost:
            _rabbitmqctl("close_connection", parts[1], "fault test")
            closed += 1
    return closed


async def test_broker_connections_closed(
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    herald = await start_herald(
        vhost_url, mailbox, sqlite_url(tmp_path), tmp_path, unused_tcp_port_factory()
    )
    try:
        events = quote_events(150, run_id())
        publishing = asyncio.create_task(publish(vhost_url, events, delay=0.01))
        await asyncio.sleep(0.7)
        closed = await asyncio.to_thread(close_vhost_connections, vhost_url)
        assert closed >= 1, "Herald's connection was closed"
        await publishing
        await wait_for_mail(mailbox, len(events), timeout=90)
        await herald.wait_ready(timeout=30)  # the consumers came back
        counts = account(events, mailbox)
        report("broker connections closed", counts)
        assert_no_loss(counts, duplicates_allowed=True)
    finally:
        await herald.terminate()
        mailbox.stop()


async def test_broker_restarted(
    private_broker: MakeBroker,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    """Row 1, on a private node: stop_app / start_app while events are published."""
    broker = await private_broker()
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    herald = await start_herald(
        broker.url, mailbox, sqlite_url(tmp_path), tmp_path, unused_tcp_port_factory()
    )
    try:
        events = quote_events(150, run_id())
        publishing = asyncio.create_task(publish(broker.url, events, delay=0.01))
        await asyncio.sleep(0.7)
        await broker.ctl("stop_app")
        await asyncio.sleep(2)
        await broker.ctl("start_app")
        await publishing
        await wait_for_mail(mailbox, len(events), timeout=120)
        await herald.wait_ready(timeout=60)
        counts = account(events, mailbox)
        report("broker restarted (stop_app/start_app)", counts)
        assert_no_loss(counts, duplicates_allowed=True)
    finally:
        await herald.terminate()
        mailbox.stop()


async def test_smtp_down_for_a_while_then_up(
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    mailbox = Mailbox(unused_tcp_port_factory())
    herald = await start_herald(
        vhost_url, mailbox, sqlite_url(tmp_path), tmp_path, unused_tcp_port_factory()
    )
    try:
        events = quote_events(100, run_id())
        await publish(vhost_url, events)
        await asyncio.sleep(3)  # the mail server is down: everything goes to the retry queues
        assert mailbox.received == []
        mailbox.start()
        await wait_for_mail(mailbox, len(events), timeout=90)
        counts = account(events, mailbox)
        report("SMTP down for a while, then up", counts)
        assert_no_loss(counts)
    finally:
        await herald.terminate()
        mailbox.stop()


async def test_smtp_451_then_accept(
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    mailbox = Mailbox(unused_tcp_port_factory(), replies=["451 4.3.0 try again later"] * 40)
    mailbox.start()
    herald = await start_herald(
        vhost_url, mailbox, sqlite_url(tmp_path), tmp_path, unused_tcp_port_factory()
    )
    try:
        events = quote_events(100, run_id())
        await publish(vhost_url, events)
        await wait_for_mail(mailbox, len(events), timeout=90)
        counts = account(events, mailbox)
        report("SMTP 451, then accept", counts)
        assert_no_loss(counts)
        assert mailbox.replies == []
    finally:
        await herald.terminate()
        mailbox.stop()


async def test_smtp_550_is_recorded_not_retried(
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    run = run_id()
    refused = {f"r{index}.{run}@load.example" for index in range(0, 100, 10)}
    mailbox = Mailbox(
        unused_tcp_port_factory(),
        refuse=lambda address: "550 5.1.1 no such mailbox" if address in refused else None,
    )
    mailbox.start()
    herald = await start_herald(
        vhost_url, mailbox, sqlite_url(tmp_path), tmp_path, unused_tcp_port_factory()
    )
    try:
        events = quote_events(100, run)
        await publish(vhost_url, events)
        await wait_for_mail(mailbox, len(events) - len(refused), timeout=60)
        from herald.ledger.store import SqlLedger

        ledger = await SqlLedger.open(sqlite_url(tmp_path))
        failed = set()
        for event in events:
            for record in await ledger.deliveries_of_event(event["source"], event["id"]):
                if record.status == "failed":
                    failed.add(event["data"]["quote"]["recipient"]["email"])
                    assert record.attempts == 1 and "550" in (record.detail or "")
        await ledger.close()
        counts = account(events, mailbox, failed=failed)
        report("SMTP 550", counts)
        assert failed == refused
        assert_no_loss(counts)
    finally:
        await herald.terminate()
        mailbox.stop()


async def test_smtp_535_pauses_consuming_until_credentials_work(
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    credentials_ok = False
    mailbox = Mailbox(unused_tcp_port_factory(), authenticate=lambda: credentials_ok)
    mailbox.start()
    herald = HeraldProcess(
        herald_env(
            vhost_url,
            mailbox.port,
            sqlite_url(tmp_path),
            port := unused_tcp_port_factory(),
            HERALD_SMTP_USERNAME="herald",
            HERALD_SMTP_PASSWORD="rotated-password",
            HERALD_SMTP_AUTH_PROBE_SECONDS="0.5",
        ),
        tmp_path,
        port,
    )
    await herald.start()
    await herald.wait_ready()
    try:
        events = quote_events(60, run_id())
        await publish(vhost_url, events)
        for _ in range(100):  # the first send meets 535: consuming pauses, /readyz turns red
            if await herald.readyz() == 503:
                break
            await asyncio.sleep(0.1)
        assert await herald.readyz() == 503
        await asyncio.sleep(1.5)
        assert mailbox.received == []
        credentials_ok = True  # the operator fixes the secret
        await herald.wait_ready(timeout=30)
        await wait_for_mail(mailbox, len(events), timeout=90)
        counts = account(events, mailbox)
        report("SMTP 535 (authentication)", counts)
        assert_no_loss(counts)
    finally:
        await herald.terminate()
        mailbox.stop()


async def test_sigterm_under_load(
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    port = unused_tcp_port_factory()
    herald = await start_herald(vhost_url, mailbox, sqlite_url(tmp_path), tmp_path, port)
    try:
        events = quote_events(300, run_id())
        await publish(vhost_url, events)
        await wait_for_mail(mailbox, 20, timeout=30)
        assert await herald.terminate() == 0  # a deploy: drain in flight, then exit cleanly
        herald = await start_herald(vhost_url, mailbox, sqlite_url(tmp_path), tmp_path, port)
        await wait_for_mail(mailbox, len(events), timeout=90)
        counts = account(events, mailbox)
        report("SIGTERM under load", counts)
        assert_no_loss(counts)
    finally:
        await herald.terminate()
        mailbox.stop()


async def test_sigkill_under_load_repeated(
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    port = unused_tcp_port_factory()
    herald = await start_herald(vhost_url, mailbox, sqlite_url(tmp_path), tmp_path, port)
    try:
        events = quote_events(400, run_id())
        await publish(vhost_url, events)
        for round_ in range(3):  # a crash, three times, each in the middle of the backlog
            await wait_for_mail(mailbox, 60 * (round_ + 1), timeout=30)
            await herald.kill()
            herald = await start_herald(vhost_url, mailbox, sqlite_url(tmp_path), tmp_path, port)
        await wait_for_mail(mailbox, len(events), timeout=120)
        counts = account(events, mailbox)
        report("SIGKILL under load, 3 times", counts)
        assert_no_loss(counts, duplicates_allowed=True)
    finally:
        await herald.terminate()
        mailbox.stop()


async def test_two_replicas_on_one_postgresql_ledger(
    vhost_url: str,
    tmp_path: Path,
    fresh_postgres: tuple[str, str],
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    database_url, _ = fresh_postgres
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    replicas = [
        await start_herald(vhost_url, mailbox, database_url, tmp_path, unused_tcp_port_factory())
        for _ in range(2)
    ]
    try:
        events = quote_events(300, run_id())
        # The same events twice: a publisher retransmitting everything.
        await asyncio.gather(publish(vhost_url, events), publish(vhost_url, events))
        await wait_for_mail(mailbox, len(events), timeout=90)
        await asyncio.sleep(2)
        counts = account(events, mailbox)
        report("two replicas, every event published twice", counts)
        assert_no_loss(counts)
    finally:
        for replica in replicas:
            await replica.terminate()
        mailbox.stop()


async def _events_processed(replica: HeraldProcess) -> float:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{replica.http_port}/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("herald_events_processed_total{")
    )


async def test_two_replicas_split_a_backlog_and_send_each_email_once(
    vhost_url: str,
    tmp_path: Path,
    fresh_postgres: tuple[str, str],
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    """Scale-out as deployed (issue 9): a backlog waits in the queue before two replicas on one
    PostgreSQL ledger start together; they share it as competing consumers."""
    database_url, _ = fresh_postgres
    connection = await aio_pika.connect(vhost_url)
    async with connection:
        await declare(await connection.channel(), retry_delays_ms=(300, 1000, 2000))
    events = quote_events(600, run_id())
    await publish(vhost_url, events)
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    replicas = [
        HeraldProcess(herald_env(vhost_url, mailbox.port, database_url, port), tmp_path, port)
        for port in (unused_tcp_port_factory(), unused_tcp_port_factory())
    ]
    try:
        for replica in replicas:
            await replica.start()
        await asyncio.gather(*(replica.wait_ready() for replica in replicas))
        await wait_for_mail(mailbox, len(events), timeout=120)
        shares = [await _events_processed(replica) for replica in replicas]
        counts = account(events, mailbox)
        report(f"two replicas split a backlog {shares[0]:.0f}/{shares[1]:.0f}", counts)
        assert_no_loss(counts)
        assert sum(shares) == len(events)
        # Competing consumers: neither replica sat idle while the other drained the backlog.
        assert min(shares) >= 0.05 * len(events), shares
    finally:
        for replica in replicas:
            if replica.process is not None and replica.process.returncode is None:
                await replica.terminate()  # one that died already must not leave the other
        mailbox.stop()


async def test_ledger_unavailable_fails_closed(
    vhost_url: str,
    tmp_path: Path,
    fresh_postgres: tuple[str, str],
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    from tests.faults.conftest import _admin

    database_url, name = fresh_postgres
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    herald = await start_herald(
        vhost_url, mailbox, database_url, tmp_path, unused_tcp_port_factory()
    )
    try:
        events = quote_events(150, run_id())
        # The database goes away: no new connections, existing ones cut.
        await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await _admin(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"  # noqa: S608
        )
        await publish(vhost_url, events)
        await asyncio.sleep(3)
        sent_while_down = len(mailbox.received)
        await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await wait_for_mail(mailbox, len(events), timeout=90)
        counts = account(events, mailbox)
        report("ledger unavailable for 3 s", counts)
        assert sent_while_down == 0, "nothing may be sent without a claim"
        assert_no_loss(counts)
    finally:
        await herald.terminate()
        mailbox.stop()


async def test_broker_killed_and_restarted(
    private_broker: MakeBroker,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    """Row 2, on a private node: SIGKILL of beam.smp while events are published, restart."""
    broker = await private_broker()
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    herald = await start_herald(
        broker.url, mailbox, sqlite_url(tmp_path), tmp_path, unused_tcp_port_factory()
    )
    try:
        events = quote_events(150, run_id())
        publishing = asyncio.create_task(publish(broker.url, events, delay=0.01))
        await asyncio.sleep(0.7)
        await broker.kill()  # the broker crashes
        await asyncio.sleep(1)
        await broker.start()
        await publishing
        await wait_for_mail(mailbox, len(events), timeout=120)
        begun = time.monotonic()
        await herald.wait_ready(timeout=60)
        counts = account(events, mailbox)
        report(
            "broker killed (SIGKILL) and restarted",
            counts,
            f"restart={broker.started_in:.1f}s ready_after={time.monotonic() - begun:.1f}s",
        )
        assert_no_loss(counts, duplicates_allowed=True)
    finally:
        await herald.terminate()
        mailbox.stop()
