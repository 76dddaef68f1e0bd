"""Issue 16, defects 1 and 3, against the real broker and a real SMTP server: a message near the
frame limit is dead-lettered without closing any connection, one domain's broken connection
does not stop the others, and a connection closed mid-send neither cancels the send nor sends
the email again."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from herald.consumers.copies import MAX_HEADER_BYTES, header_bytes
from herald.schemas.examples import load_example
from herald.service.app import Service, build_service
from tests.conftest import SmtpServer, _rabbitmqctl
from tests.faults.harness import quote_events
from tests.integration.conftest import Broker, metric, service_settings, wait_for_metric

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def user_events(count: int, prefix: str) -> list[dict[str, Any]]:
    template = load_example("users.service_account.recovery_requested")
    events = []
    for index in range(count):
        document = copy.deepcopy(template)
        document["id"] = f"{prefix}-user-{index}"
        events.append(document)
    return events


def herald_connections(vhost: str, name: str) -> list[str]:
    """Pids of the broker connections in `vhost` whose client called them `name`."""
    rows = _rabbitmqctl(
        "list_connections", "-q", "--no-table-headers", "vhost", "pid", "client_properties"
    )
    wanted = f'{{"connection_name","{name}"}}'
    pids = []
    for row in rows.splitlines():
        fields = row.split("\t", 2)
        if len(fields) == 3 and fields[0] == vhost and wanted in fields[2]:
            pids.append(fields[1])
    return pids


def close_connections(vhost: str, name: str) -> int:
    pids = herald_connections(vhost, name)
    for pid in pids:
        with contextlib.suppress(subprocess.CalledProcessError):  # closed meanwhile
            _rabbitmqctl("close_connection", pid, "test: connection closed")
    return len(pids)


@pytest.fixture
def herald(service: Service) -> Service:
    """The running service of tests/integration/conftest.py, under the name these tests use."""
    return service


async def test_headers_near_the_frame_limit_are_dead_lettered_without_breaking_a_connection(
    herald: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    # Given a message whose one header nearly fills the 131,072-byte frame, among valid events
    # of its own domain and of another
    run = uuid.uuid4().hex[:8]
    orders, users = quote_events(20, run), user_events(5, run)
    poison_id = f"poison-{run}"
    await broker.publish(
        b"not json",
        routing_key="orders.order.placed",
        message_id=poison_id,
        headers={"x-pad": "a" * 130_900},
    )
    for document in orders + users:
        await broker.publish(document)

    # Then the poison is dead-lettered for its headers, without them (its copy would not fit
    # in a frame), and every valid event is mailed once
    dead = await broker.dead_letter(poison_id, timeout=30)
    headers = dead.headers or {}
    assert headers["x-reject-reason"] == "headers_too_large"
    assert "x-pad" not in headers
    assert headers["x-original-headers-dropped"] is True
    assert dead.body == b"not json"
    received = await smtp_server.wait_for(len(orders) + len(users), timeout=60)
    await asyncio.sleep(0.5)
    assert len(received) == len(orders) + len(users)
    # ... and no connection was ever lost
    assert metric(herald, "herald_broker_reconnects_total") == 0
    assert metric(herald, "herald_events_dead_lettered_total", reason="headers_too_large") == 1


async def test_header_table_at_the_limit_is_accepted(herald: Service, broker: Broker) -> None:
    # A table of exactly MAX_HEADER_BYTES encoded bytes: one long string header. Encoded, the
    # table has a 4-byte length, then the key (1 + len bytes), a type byte, the value's 4-byte
    # length and the value.
    key = "x-pad"
    value = "a" * (MAX_HEADER_BYTES - 4 - (1 + len(key)) - 1 - 4)
    assert header_bytes({key: value}) == MAX_HEADER_BYTES
    document = load_example("orders.order.placed")
    document["id"] = f"limit-{uuid.uuid4().hex[:8]}"
    await broker.publish(document, headers={key: value})
    await wait_for_metric(herald, "herald_events_processed_total", 1, domain="orders")
    assert metric(herald, "herald_events_dead_lettered_total") == 0

    document["id"] = f"over-{uuid.uuid4().hex[:8]}"
    await broker.publish(document, headers={key: value + "a"})
    dead = await broker.dead_letter(document["id"])
    assert (dead.headers or {})["x-reject-reason"] == "headers_too_large"


async def test_one_domain_losing_its_connection_does_not_stop_the_others(
    herald: Service, broker: Broker, smtp_server: SmtpServer, amqp_url: str
) -> None:
    vhost = amqp_url.rsplit("/", 1)[1]
    run = uuid.uuid4().hex[:8]
    # Given the orders domain's connection closed by the broker again and again
    stop = asyncio.Event()

    async def keep_closing_orders() -> int:
        closed = 0
        while not stop.is_set():
            closed += await asyncio.to_thread(close_connections, vhost, "herald-orders")
            await asyncio.sleep(0.3)
        return closed

    closer = asyncio.create_task(keep_closing_orders())
    await asyncio.sleep(1)
    # When users events are published meanwhile
    users = user_events(15, run)
    for document in users:
        await broker.publish(document)
    # Then they are all mailed while orders is still being broken
    await smtp_server.wait_for(len(users), timeout=30)
    stop.set()
    assert await closer > 0
    # ... and the orders consumer is back afterwards, its losses counted, none of the others'
    deadline = asyncio.get_running_loop().time() + 30
    while not herald.ready:
        assert asyncio.get_running_loop().time() < deadline, "orders consumer did not come back"
        await asyncio.sleep(0.1)
    await wait_for_metric(herald, "herald_broker_reconnects_total", 1, domain="orders")
    assert metric(herald, "herald_broker_reconnects_total", domain="users") == 0


class _SlowMailbox:
    """Takes every message, then answers 250 after `delay` seconds: a message counts as received
    once its data is in, as at a real server that queued it before replying (a client that
    goes away meanwhile does not take it back)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.received: list[tuple[str, str]] = []
        self.in_data = 0

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Envelope) -> str:
        self.in_data += 1
        content = (envelope.original_content or b"").decode("utf-8", "replace")
        headers = content.split("\r\n\r\n", 1)[0].split("\r\n")
        message_id = next(
            (h.split(": ", 1)[1] for h in headers if h.startswith("Message-ID: ")), ""
        )
        for recipient in envelope.rcpt_tos:
            self.received.append((recipient, message_id))
        await asyncio.sleep(self.delay)
        return "250 OK queued"


@pytest.fixture
def slow_smtp(unused_tcp_port: int) -> Iterator[tuple[SmtpServer, _SlowMailbox]]:
    mailbox = _SlowMailbox(delay=0.8)
    controller = Controller(mailbox, hostname="127.0.0.1", port=unused_tcp_port)
    controller.start()
    yield SmtpServer("127.0.0.1", unused_tcp_port), mailbox
    controller.stop()


async def test_connection_closed_mid_send_sends_each_email_once(
    amqp_url: str,
    broker: Broker,
    slow_smtp: tuple[SmtpServer, _SlowMailbox],
    tmp_path: Path,
) -> None:
    server, mailbox = slow_smtp
    vhost = amqp_url.rsplit("/", 1)[1]
    herald = await build_service(
        service_settings(amqp_url, server, tmp_path, smtp_pool_size=8, retry_delays_ms=[300])
    )
    await herald.start()
    try:
        # Given a burst of events whose emails take 0.8 s each at the mail server
        events = quote_events(24, uuid.uuid4().hex[:8])
        for document in events:
            await broker.publish(document)
        deadline = asyncio.get_running_loop().time() + 20
        while mailbox.in_data < 4:  # sends are in the middle of DATA
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        # When the broker closes Herald's orders connection mid-send
        assert await asyncio.to_thread(close_connections, vhost, "herald-orders") == 1
        # Then every email arrives exactly once
        deadline = asyncio.get_running_loop().time() + 60
        while len({recipient for recipient, _ in mailbox.received}) < len(events):
            assert asyncio.get_running_loop().time() < deadline, "emails missing"
            await asyncio.sleep(0.1)
        # ... also once the connection is back and the broker has redelivered what was in
        # flight: the redeliveries find their emails sent
        await wait_for_metric(herald, "herald_broker_reconnects_total", 1, domain="orders")
        await wait_for_metric(herald, "herald_events_duplicate_total", 1, domain="orders")
        await asyncio.sleep(2)
        copies = Counter(recipient for recipient, _ in mailbox.received)
        assert max(copies.values()) == 1, [r for r, n in copies.items() if n > 1]
    finally:
        await herald.stop()


NESTED_PUBLISHER = """
import asyncio, sys
import aio_pika
sys.setrecursionlimit(50_000)  # our own encoder only: this process publishes and exits

async def main(url, message_id, depth):
    table = {}
    inner = table
    for _ in range(depth):
        inner["a"] = {}
        inner = inner["a"]
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("portal.events")
        message = aio_pika.Message(
            b"{}", headers={"x-deep": table}, message_id=message_id,
            content_type="application/cloudevents+json", delivery_mode=2,
        )
        await exchange.publish(message, routing_key="orders.order.placed", timeout=10)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_headers_nested_past_the_recursion_limit_are_dead_lettered(
    herald: Service, broker: Broker, smtp_server: SmtpServer, amqp_url: str
) -> None:
    # Given a message whose header table nests 5,000 levels deep (35 KB, well within a frame),
    # which a recursive decoder cannot read (published by a process of its own, whose
    # recursion limit is raised), followed by valid events of its domain
    run = uuid.uuid4().hex[:8]
    poison_id = f"nested-{run}"
    publisher = await asyncio.create_subprocess_exec(
        sys.executable, "-c", NESTED_PUBLISHER, amqp_url, poison_id, "5000"
    )
    assert await publisher.wait() == 0
    orders = quote_events(10, run)
    for document in orders:
        await broker.publish(document)
    # Then the valid events are mailed, the poison is dead-lettered for its headers, and the
    # domain's connection never broke
    await smtp_server.wait_for(len(orders), timeout=30)
    dead = await broker.dead_letter(poison_id, timeout=30)
    assert (dead.headers or {})["x-reject-reason"] == "headers_too_large"
    assert metric(herald, "herald_broker_reconnects_total") == 0
