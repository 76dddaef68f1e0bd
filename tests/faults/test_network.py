"""Rows 3, 5, 6 and 36 of the fault matrix: the broker frozen (private node), and a TCP proxy in
the test process (tests/faults/proxy.py) between Herald and the broker, or Herald and the mail
server, that blackholes, resets, truncates, or swallows Herald's basic.ack. Checked at the SMTP
server."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.faults.conftest import MakeBroker
from tests.faults.harness import (
    HeraldProcess,
    Mailbox,
    account,
    assert_no_loss,
    poll,
    publish,
    quote_events,
    run_id,
    sqlite_url,
    start_herald,
    stop_herald,
    wait_for_mail,
)
from tests.faults.proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

HEARTBEAT = 2  # seconds, negotiated through the AMQP URL
# aiormq gives up on a connection after (heartbeat + 1) x 3 seconds without a frame (its
# HEARTBEAT_GRACE_MULTIPLIER), so with heartbeat 2 Herald notices after about 9 s, not 3 x 2.
DETECTION = (HEARTBEAT + 1) * 3
OUTAGE = DETECTION + 3  # seconds the broker stays frozen or the network blackholed


@pytest.fixture
async def proxies() -> AsyncIterator[list[TcpProxy]]:
    made: list[TcpProxy] = []
    yield made
    for proxy in made:
        await proxy.stop()


async def make_proxy(
    proxies: list[TcpProxy], port: int, target_port: int, amqp: bool = False
) -> TcpProxy:
    proxy = TcpProxy(port, target_port, amqp=amqp)
    await proxy.start()
    proxies.append(proxy)
    return proxy


def through(vhost_url: str, proxy: TcpProxy, query: str = "") -> str:
    """The scenario's vhost URL, with the proxy's port instead of the broker's."""
    parts = urlsplit(vhost_url)
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}{parts.path}"
    return f"{url}?{query}" if query else url


async def seconds_until(condition: Callable[[], object], timeout: float) -> float | None:
    begun = time.monotonic()
    if await poll(condition, timeout, interval=0.05):
        return time.monotonic() - begun
    return None


async def not_ready(herald: HeraldProcess) -> bool:
    return await herald.readyz() != 200


async def ready(herald: HeraldProcess) -> bool:
    return await herald.readyz() == 200


async def test_broker_frozen_past_three_heartbeats(
    private_broker: MakeBroker,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    """Row 3: SIGSTOP the broker past aiormq's detection time (12 s), then SIGCONT."""
    broker = await private_broker()
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    herald = await start_herald(
        broker.url_for(query=f"heartbeat={HEARTBEAT}"),
        mailbox,
        sqlite_url(tmp_path),
        tmp_path,
        unused_tcp_port_factory(),
    )
    try:
        # Given events flowing
        events = quote_events(150, run_id())
        publishing = asyncio.create_task(publish(broker.url, events, delay=0.01))
        await wait_for_mail(mailbox, 20, timeout=30)
        # When the broker freezes for 6 heartbeat intervals
        broker.signal(signal.SIGSTOP)
        detected = await seconds_until(lambda: not_ready(herald), OUTAGE)
        await asyncio.sleep(max(0.0, OUTAGE - (detected or OUTAGE)))
        broker.signal(signal.SIGCONT)
        # Then Herald noticed the dead connection, reconnects, and nothing is lost
        recovered = await seconds_until(lambda: ready(herald), 60)
        await publishing
        await wait_for_mail(mailbox, len(events), timeout=90)
        counts = account(events, mailbox)
        report(
            f"broker frozen (SIGSTOP {OUTAGE} s, heartbeat {HEARTBEAT} s)",
            counts,
            f"detected_after={detected}s recovered_after_cont={recovered}s",
        )
        assert detected is not None and detected <= DETECTION + 1.5, detected
        assert recovered is not None and recovered <= 2 * HEARTBEAT + 10, recovered
        assert_no_loss(counts, duplicates_allowed=True)
    finally:
        await stop_herald(herald)
        mailbox.stop()


@pytest.mark.parametrize("fault", ["blackhole", "reset", "truncated_frame"])
async def test_network_fault_between_herald_and_broker(
    fault: str,
    vhost_url: str,
    proxies: list[TcpProxy],
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    """Rows 5 and 6, broker side: a blackhole past aiormq's detection time, RSTs, a frame cut
    in half."""
    proxy = await make_proxy(proxies, unused_tcp_port_factory(), urlsplit(vhost_url).port or 5672)
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    herald = await start_herald(
        through(vhost_url, proxy, f"heartbeat={HEARTBEAT}"),
        mailbox,
        sqlite_url(tmp_path),
        tmp_path,
        unused_tcp_port_factory(),
    )
    try:
        # Given events flowing (published straight to the broker, as upstream does)
        events = quote_events(150, run_id())
        publishing = asyncio.create_task(publish(vhost_url, events, delay=0.01))
        await wait_for_mail(mailbox, 20, timeout=30)
        # When the network between Herald and the broker fails
        detected: float | None = None
        if fault == "blackhole":
            proxy.blackhole()
            detected = await seconds_until(lambda: not_ready(herald), OUTAGE)
            await asyncio.sleep(max(0.0, OUTAGE - (detected or OUTAGE)))
            proxy.resume()
        elif fault == "reset":
            for _ in range(3):
                proxy.reset_all()
                await poll(lambda: ready(herald), 30)
                await asyncio.sleep(0.5)
        else:
            for _ in range(3):
                proxy.cut_mid_frame()
                await poll(lambda: not proxy.cut_pending, 10, interval=0.05)
                await poll(lambda: ready(herald), 30)
        # Then it reconnects and every email arrives once
        recovered = await seconds_until(lambda: ready(herald), 60)
        await publishing
        await wait_for_mail(mailbox, len(events), timeout=90)
        counts = account(events, mailbox)
        report(
            f"broker link {fault}",
            counts,
            f"connections={proxy.connections_made} detected_after={detected}s "
            f"recovered_after={recovered}s",
        )
        assert proxy.connections_made >= 2, "Herald reconnected"
        if fault == "blackhole":
            assert detected is not None and detected <= DETECTION + 1.5, detected
        assert_no_loss(counts, duplicates_allowed=True)
    finally:
        await stop_herald(herald)
        mailbox.stop()


@pytest.mark.parametrize("fault", ["blackhole", "reset", "truncated_reply"])
async def test_network_fault_between_herald_and_smtp(
    fault: str,
    vhost_url: str,
    proxies: list[TcpProxy],
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    """Rows 5 and 6, mail side: SMTP timeout 3 s; a blackhole of 6 s, RSTs, a reply cut in
    half. A drop after DATA is ambiguous (row 21): a second copy may follow, same Message-ID."""
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    proxy = await make_proxy(proxies, unused_tcp_port_factory(), mailbox.port)
    herald = await start_herald(
        vhost_url,
        Mailbox(proxy.port),  # Herald's SMTP port is the proxy's
        sqlite_url(tmp_path),
        tmp_path,
        unused_tcp_port_factory(),
    )
    try:
        events = quote_events(150, run_id())
        publishing = asyncio.create_task(publish(vhost_url, events, delay=0.01))
        await wait_for_mail(mailbox, 20, timeout=30)
        if fault == "blackhole":
            proxy.blackhole()
            await asyncio.sleep(6)
            proxy.resume()
        elif fault == "reset":
            for _ in range(3):
                proxy.reset_all()
                await asyncio.sleep(0.7)
        else:
            for _ in range(3):
                proxy.cut_mid_frame()
                await poll(lambda: not proxy.cut_pending, 10, interval=0.05)
                await asyncio.sleep(0.3)
        await publishing
        await wait_for_mail(mailbox, len(events), timeout=120)
        counts = account(events, mailbox)
        report(f"SMTP link {fault}", counts, f"connections={proxy.connections_made}")
        assert proxy.connections_made >= 2, "Herald reconnected"
        assert_no_loss(counts, duplicates_allowed=True)
    finally:
        await stop_herald(herald)
        mailbox.stop()


async def test_ack_lost_after_the_send(
    vhost_url: str,
    proxies: list[TcpProxy],
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    """Row 36: the proxy drops the connection when it sees Herald's basic.ack (AMQP frame type
    1, class 60, method 80), without forwarding it, three times: the broker redelivers events
    whose emails were sent, and the ledger makes the redeliveries send nothing."""
    proxy = await make_proxy(
        proxies, unused_tcp_port_factory(), urlsplit(vhost_url).port or 5672, amqp=True
    )
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    herald = await start_herald(
        through(vhost_url, proxy),
        mailbox,
        sqlite_url(tmp_path),
        tmp_path,
        unused_tcp_port_factory(),
    )
    try:
        # Given Herald consuming through a proxy that swallows its next ack, three times over
        events = quote_events(60, run_id())
        for wave in range(3):
            proxy.drop_on_amqp_ack(1)
            # When events arrive, are sent, and an ack is lost with its connection
            await publish(vhost_url, events[wave * 20 : (wave + 1) * 20])
            await wait_for_mail(mailbox, (wave + 1) * 20, timeout=90)
            assert await poll(lambda n=wave + 1: proxy.acks_dropped == n, 60)
            assert await poll(lambda: ready(herald), 60)
        await asyncio.sleep(2)  # the redeliveries of the unacked events settle
        # Then each email arrived exactly once
        counts = account(events, mailbox)
        report(
            "ack lost after the send (3 times)",
            counts,
            f"acks_dropped={proxy.acks_dropped} connections={proxy.connections_made}",
        )
        assert proxy.acks_dropped == 3
        assert_no_loss(counts)
    finally:
        await stop_herald(herald)
        mailbox.stop()
