"""Delivery guarantees under faults (issue 5): every scenario publishes a known set of events,
injects one fault against real processes, and must end with lost = 0 and unexpected = 0;
duplicates are allowed only in the window between the server's 250 and the ledger record, and
then carry the same Message-ID."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path

import aio_pika
import httpx
import pytest

from consumers.topology import declare
from tests.faults.harness import (
    Counts,
    HeraldProcess,
    Mailbox,
    account,
    herald_env,
    publish,
    quote_events,
    run_id,
    wait_for_mail,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Callable[[str, Counts], None]:
    def show(name: str, counts: Counts) -> None:
        with capsys.disabled():
            print("\n" + counts.line(name))

    return show


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/herald.db"


async def start_herald(
    vhost_url: str,
    mailbox: Mailbox,
    database_url: str,
    tmp_path: Path,
    port: int,
    **extra: str,
) -> HeraldProcess:
    process = HeraldProcess(
        herald_env(vhost_url, mailbox.port, database_url, port, **extra), tmp_path, port
    )
    await process.start()
    await process.wait_ready()
    return process


def assert_no_loss(counts: Counts, duplicates_allowed: bool = False) -> None:
    assert counts.lost == 0, counts
    assert counts.unexpected == 0, counts
    if duplicates_allowed:
        assert counts.duplicates_share_message_id, counts
    else:
        assert counts.duplicated == 0, counts


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


async def test_broker_connections_closed(
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[[str, Counts], None],
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
        rabbitmqctl("close_all_connections", "fault test")
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
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[[str, Counts], None],
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
        rabbitmqctl("stop_app")
        await asyncio.sleep(2)
        rabbitmqctl("start_app")
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
    report: Callable[[str, Counts], None],
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
    report: Callable[[str, Counts], None],
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
    report: Callable[[str, Counts], None],
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
        from ledger.store import SqlLedger

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
    report: Callable[[str, Counts], None],
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
    report: Callable[[str, Counts], None],
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
    report: Callable[[str, Counts], None],
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
    report: Callable[[str, Counts], None],
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
    report: Callable[[str, Counts], None],
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
    report: Callable[[str, Counts], None],
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


def _broker_pid() -> int:
    result = subprocess.run(
        ["rabbitmqctl", "eval", "list_to_integer(os:getpid())."],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return int(result.stdout.strip().splitlines()[-1])


async def _wait_for_broker(timeout: float = 120) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        probe = await asyncio.create_subprocess_exec(
            "rabbitmq-diagnostics",
            "-q",
            "check_port_connectivity",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        if await probe.wait() == 0:
            return
        await asyncio.sleep(1)
    raise AssertionError("RabbitMQ did not come back")


async def test_broker_killed_and_restarted(
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[[str, Counts], None],
) -> None:
    import os
    import signal

    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    herald = await start_herald(
        vhost_url, mailbox, sqlite_url(tmp_path), tmp_path, unused_tcp_port_factory()
    )
    try:
        events = quote_events(150, run_id())
        publishing = asyncio.create_task(publish(vhost_url, events, delay=0.01))
        await asyncio.sleep(0.7)
        os.kill(_broker_pid(), signal.SIGKILL)  # the broker crashes
        await asyncio.sleep(1)
        restart = await asyncio.create_subprocess_exec(
            "rabbitmq-server",
            "-detached",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await restart.wait()
        await _wait_for_broker()
        await publishing
        await wait_for_mail(mailbox, len(events), timeout=120)
        await herald.wait_ready(timeout=60)
        counts = account(events, mailbox)
        report("broker killed (SIGKILL) and restarted", counts)
        assert_no_loss(counts, duplicates_allowed=True)
    finally:
        await _wait_for_broker()
        await herald.terminate()
        mailbox.stop()
