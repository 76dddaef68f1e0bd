"""The SMTP pace against a real SMTP server (aiosmtpd): HERALD_SMTP_MAX_RATE is honoured, and a
relay that answers `454 4.7.0 Throttling failure` for a while makes the rate fall, loses no
email, and the rate recovers once it stops."""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from herald.consumers.topology import queue_name
from herald.errors import TransientSendError
from herald.renderers.email import OutgoingEmail
from herald.schemas.examples import load_example
from herald.senders.smtp import SmtpOptions, SmtpSender, SmtpThrottled
from herald.service.app import build_service
from tests.conftest import SmtpServer
from tests.integration.conftest import Broker, metric, service_settings

pytestmark = pytest.mark.integration

THROTTLE_REPLY = "454 4.7.0 Throttling failure: Maximum sending rate exceeded."


def email(to: str) -> OutgoingEmail:
    return OutgoingEmail(
        notification="order_placed",
        key="k" * 64,
        envelope_from="notifications@operator.example",
        envelope_to=to,
        message_id=f"<{to}>",
        subject="Hello",
        content=b"From: a@b.example\r\nTo: " + to.encode() + b"\r\nSubject: Hello\r\n\r\nHi\r\n",
    )


class ThrottlingRelay:
    """Answers THROTTLE_REPLY to every DATA until `throttle_until` (time.monotonic; the server
    runs in its own thread), then accepts and counts each recipient."""

    def __init__(self) -> None:
        self.throttle_until = 0.0
        self.throttled = 0
        self.accepted: Counter[str] = Counter()
        self.accepted_at: list[float] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Envelope) -> str:
        if time.monotonic() < self.throttle_until:
            self.throttled += 1
            return THROTTLE_REPLY
        for recipient in envelope.rcpt_tos:
            self.accepted[recipient] += 1
        self.accepted_at.append(time.monotonic())
        return "250 OK queued"


@pytest.fixture
def relay(unused_tcp_port: int) -> Iterator[tuple[ThrottlingRelay, int]]:
    handler = ThrottlingRelay()
    controller = Controller(handler, hostname="127.0.0.1", port=unused_tcp_port)
    controller.start()
    yield handler, unused_tcp_port
    controller.stop()


class Rates:
    def __init__(self) -> None:
        self.rates: list[float] = []
        self.throttles: list[int | None] = []
        self.waits: list[float] = []

    def smtp_rate_changed(self, rate: float) -> None:
        self.rates.append(rate)

    def smtp_throttled(self, code: int | None) -> None:
        self.throttles.append(code)

    def smtp_token_waited(self, seconds: float) -> None:
        self.waits.append(seconds)


def sender_for(port: int, rates: Rates, **options: Any) -> SmtpSender:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "retry_base_seconds": 0.01,
        "retry_max_seconds": 0.2,
        "retry_attempts": 3,
        "pool_size": 4,
    }
    values.update(options)
    return SmtpSender(SmtpOptions(**values), pace_observer=rates)


async def deliver(sender: SmtpSender, message: OutgoingEmail) -> None:
    """What the broker-side retry does for a transient failure, compressed: try again later."""
    while True:
        try:
            await sender.send(message)
            return
        except TransientSendError:
            await asyncio.sleep(0.1)


async def test_throttling_lowers_the_rate_loses_nothing_and_recovers(
    relay: tuple[ThrottlingRelay, int],
) -> None:
    handler, port = relay
    rates = Rates()
    sender = sender_for(port, rates, max_rate=40.0)
    sender.pace._recovery_seconds = 2.0  # recover within the test: 20/s per second
    handler.throttle_until = time.monotonic() + 1.0
    recipients = [f"user{index}@northwind.example" for index in range(60)]
    await asyncio.wait_for(
        asyncio.gather(*(deliver(sender, email(to)) for to in recipients)), timeout=45
    )
    assert handler.throttled > 0
    assert set(rates.throttles) == {454}
    assert min(rates.rates) <= 10.0  # halved at least twice from 40/s
    # Every email arrived, each exactly once, after the throttling stopped.
    assert handler.accepted == Counter({to: 1 for to in recipients})
    assert all(at >= handler.throttle_until for at in handler.accepted_at)
    # The rate recovers once the relay accepts again.
    await asyncio.sleep(2.5)
    await sender.send(email("late@northwind.example"))
    assert sender.pace.current_rate == pytest.approx(40.0)
    assert rates.rates[-1] == pytest.approx(40.0)
    await sender.close()


async def test_a_throttling_reply_is_transient_and_slows_an_unlimited_sender(
    relay: tuple[ThrottlingRelay, int],
) -> None:
    handler, port = relay
    rates = Rates()
    sender = sender_for(port, rates, retry_attempts=1)
    handler.throttle_until = time.monotonic() + 60
    with pytest.raises(SmtpThrottled) as caught:
        await sender.send(email("mia@northwind.example"))
    assert caught.value.code == 454
    assert isinstance(caught.value, TransientSendError)
    assert sender.pace.engaged and sender.pace.current_rate > 0
    assert rates.throttles == [454]
    await sender.close()


async def test_a_burst_of_100_at_20_per_second_takes_at_least_four_and_a_half_seconds(
    relay: tuple[ThrottlingRelay, int],
) -> None:
    handler, port = relay
    rates = Rates()
    sender = sender_for(port, rates, max_rate=20.0)
    recipients = [f"user{index}@northwind.example" for index in range(100)]
    started = time.monotonic()
    await asyncio.gather(*(sender.send(email(to)) for to in recipients))
    elapsed = time.monotonic() - started
    # 2 tokens at once (a tenth of a second), 98 at 20 a second: 4.9 s (a lower bound only).
    assert elapsed >= 4.5
    assert sum(handler.accepted.values()) == 100
    assert rates.waits  # the waits were measured
    await sender.close()


class CountingSender:
    """Wraps the service's SMTP sender and records the most sends in flight at once (waiting
    for a token included)."""

    def __init__(self, inner: SmtpSender) -> None:
        self.inner = inner
        self.in_flight = 0
        self.peak = 0

    async def send(self, message: OutgoingEmail) -> Any:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await self.inner.send(message)
        finally:
            self.in_flight -= 1


@pytest.mark.timeout(120)
async def test_while_the_bucket_is_empty_the_broker_keeps_the_backlog(
    amqp_url: str, smtp_server: SmtpServer, tmp_path: Path, broker: Broker
) -> None:
    prefetch = 4
    herald = await build_service(
        service_settings(amqp_url, smtp_server, tmp_path, smtp_max_rate=10.0, prefetch=prefetch)
    )
    assert isinstance(herald.sender, SmtpSender)
    counting = CountingSender(herald.sender)
    herald.pipeline.sender = counting  # type: ignore[assignment]
    await herald.start()
    try:
        run = uuid.uuid4().hex[:8]
        template = load_example("users.service_account.recovery_requested")
        count = 40
        for index in range(count):
            document = copy.deepcopy(template)
            document["id"] = f"pace-{run}-{index}"
            await broker.publish(document)
        # While sends wait for tokens, the rest of the burst stays in the broker's queue.
        await asyncio.sleep(1.0)
        assert await broker.queue_depth(queue_name("users")) > 0
        received = await smtp_server.wait_for(count, timeout=60)
        per_event = len(received) // count
        # The sends in flight (waiting for a token or sending) never exceeded what the prefetch
        # lets Herald hold: prefetch x domains (one domain here) x emails per event.
        assert 1 <= counting.peak <= prefetch * per_event
        assert metric(herald, "herald_smtp_rate_limit") == 10.0
        assert metric(herald, "herald_smtp_rate_current") == 10.0
        assert metric(herald, "herald_smtp_token_wait_seconds_count") > 0
    finally:
        await herald.stop()
