"""The dead-letter queue as the replay tool sees it: browse without consuming, then settle each
message (remove it, or return it to its place), and publish copies back with confirms.

Browsing takes every message with `basic.get` and holds it unacked: nothing is lost if the tool
dies (the broker returns held messages when the connection closes, in their order), and
returning the ones not removed keeps the queue's order (quorum queues serve returned messages
first). A message is removed only after whatever replaced it was confirmed by the broker.

This module knows AMQP only; filtering, validation and auditing are the caller's
(`herald.replay`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)

from consumers.amqp import ORIGINAL_ROUTING_KEY_HEADER, rejection_time
from consumers.topology import DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE

# Set by the broker on each delivery of a quorum queue message: not part of the message.
BROKER_DELIVERY_HEADERS = frozenset({"x-delivery-count"})
REPLAY_COUNT_HEADER = "x-herald-replay-count"
REPLAYED_AT_HEADER = "x-herald-replayed-at"
REPLAYED_BY_HEADER = "x-herald-replayed-by"
PROPERTY_NAMES = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message as it is stored: body, AMQP properties and headers (without the broker's
    per-delivery ones), and the routing key it was dead-lettered with. Lossless."""

    body: bytes
    routing_key: str
    headers: Mapping[str, Any]
    properties: Mapping[str, Any]

    @property
    def message_id(self) -> str | None:
        value = self.properties.get("message_id")
        return value if isinstance(value, str) else None

    @property
    def original_routing_key(self) -> str:
        """The key the publisher used: Herald's replay header (a message dead-lettered again
        after a replay), else Herald's reject header, else RabbitMQ's `x-death`, else the key
        the message was dead-lettered with."""
        for name in (ORIGINAL_ROUTING_KEY_HEADER, "x-original-routing-key"):
            value = _text(self.headers.get(name))
            if value:
                return value
        for death in _deaths(self.headers):
            keys = death.get("routing-keys")
            if isinstance(keys, list) and keys:
                value = _text(keys[0])
                if value:
                    return value
        return self.routing_key

    @property
    def reason(self) -> str:
        """Herald's `x-reject-reason`, or the broker's dead-letter reason (`delivery_limit`)."""
        reason = _text(self.headers.get("x-reject-reason"))
        if reason:
            return reason
        first = _text(self.headers.get("x-first-death-reason"))
        if first:
            return first
        deaths = _deaths(self.headers)
        return (_text(deaths[0].get("reason")) or "unknown") if deaths else "unknown"

    @property
    def rejected_at(self) -> datetime | None:
        timestamp = self.properties.get("timestamp")
        return rejection_time(self.headers, timestamp if isinstance(timestamp, datetime) else None)

    @property
    def replay_count(self) -> int:
        count = self.headers.get(REPLAY_COUNT_HEADER, 0)
        return count if isinstance(count, int) else 0

    def to_message(self, headers: Mapping[str, Any] | None = None) -> aio_pika.Message:
        """An AMQP message with these properties, and these headers or `headers`."""
        properties = dict(self.properties)
        properties.setdefault("delivery_mode", aio_pika.DeliveryMode.PERSISTENT)
        return aio_pika.Message(
            body=self.body, headers=dict(self.headers if headers is None else headers), **properties
        )


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else None


def _deaths(headers: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    deaths = headers.get("x-death")
    if not isinstance(deaths, list):
        return []
    return [death for death in deaths if isinstance(death, Mapping)]


def stored(message: AbstractIncomingMessage) -> StoredMessage:
    headers = {
        key: value
        for key, value in (message.headers or {}).items()
        if key not in BROKER_DELIVERY_HEADERS
    }
    properties = {
        name: getattr(message, name)
        for name in PROPERTY_NAMES
        if getattr(message, name) is not None
    }
    if "delivery_mode" in properties:
        properties["delivery_mode"] = int(properties["delivery_mode"])
    return StoredMessage(message.body, message.routing_key or "", headers, properties)


@dataclass
class Held:
    """A dead letter taken from the queue and not settled yet."""

    message: StoredMessage
    delivery: AbstractIncomingMessage
    settled: bool = False


@dataclass
class DeadLetterSession:
    """Browse the dead-letter queue, settle what was taken, publish with confirms.

    Use as an async context manager: on exit every message still held is returned to the
    queue in order (also when the caller failed), and the connection is closed.
    """

    url: str
    connection_name: str = "herald-replay"
    publish_timeout_seconds: float = 10.0
    _connection: AbstractConnection | None = None
    _channel: AbstractChannel | None = None
    _queue: AbstractQueue | None = None
    _held: list[Held] = field(default_factory=list)

    async def __aenter__(self) -> DeadLetterSession:
        self._connection = await aio_pika.connect(
            self.url, client_properties={"connection_name": self.connection_name}
        )
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._queue = await self._channel.get_queue(DEAD_LETTER_QUEUE, ensure=True)
        return self

    async def __aexit__(self, *_: object) -> None:
        try:
            await self.return_unsettled()
        finally:
            if self._connection is not None:
                await self._connection.close()

    async def browse(self, limit: int | None = None) -> list[Held]:
        """Take every message (up to `limit`) and hold it unacked, in queue order."""
        assert self._queue is not None, "use the session as an async context manager"
        taken: list[Held] = []
        while limit is None or len(taken) < limit:
            delivery = await self._queue.get(no_ack=False, fail=False, timeout=10)
            if delivery is None:
                break
            held = Held(stored(delivery), delivery)
            taken.append(held)
            self._held.append(held)
        return taken

    async def remove(self, held: Held) -> None:
        """Delete a held message from the queue (only once its replacement is confirmed)."""
        await held.delivery.ack()
        held.settled = True

    async def return_unsettled(self, visible_within_seconds: float = 5.0) -> None:
        """Return every held message not removed, in the order taken, and wait (briefly)
        until the queue counts them as ready again, so that the next command sees them."""
        channel = self._channel
        if channel is None or channel.is_closed:
            return  # the broker returns them itself when the channel is gone
        returned = 0
        for held in self._held:
            if not held.settled:
                await held.delivery.reject(requeue=True)
                held.settled = True
                returned += 1
        self._held.clear()
        if not returned:
            return
        underlay = await channel.get_underlay_channel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + visible_within_seconds
        while loop.time() < deadline:
            # A reject has no reply; the quorum queue applies the returns a moment later.
            declared = await underlay.queue_declare(DEAD_LETTER_QUEUE, passive=True)
            if (declared.message_count or 0) >= returned:
                return
            await asyncio.sleep(0.02)

    async def publish_to_queue(self, message: aio_pika.Message, queue: str) -> None:
        """Publish into `queue` through the default exchange, mandatory, and wait for the
        broker's confirm (an unroutable message raises)."""
        assert self._channel is not None
        await self._channel.default_exchange.publish(
            message, routing_key=queue, mandatory=True, timeout=self.publish_timeout_seconds
        )

    async def publish_dead_letter(self, message: StoredMessage) -> None:
        """Put a message (an exported one) back into the dead-letter queue through
        `herald.dlx`, keeping its routing key."""
        assert self._channel is not None
        exchange = await self._channel.get_exchange(DEAD_LETTER_EXCHANGE, ensure=True)
        await exchange.publish(
            message.to_message(),
            routing_key=message.routing_key,
            mandatory=True,
            timeout=self.publish_timeout_seconds,
        )


def replayed_headers(message: StoredMessage, by: str) -> dict[str, Any]:
    """The message's headers plus the replay's: count, time, who, and the original key."""
    headers = dict(message.headers)
    headers[ORIGINAL_ROUTING_KEY_HEADER] = message.original_routing_key
    headers[REPLAY_COUNT_HEADER] = message.replay_count + 1
    headers[REPLAYED_AT_HEADER] = datetime.now(UTC).isoformat(timespec="milliseconds")
    headers[REPLAYED_BY_HEADER] = by
    return headers


async def pace(rate_per_second: float | None, started: float, done: int) -> None:
    """Sleep so that `done` operations since `started` (loop time) keep to the rate."""
    if not rate_per_second:
        return
    loop = asyncio.get_running_loop()
    due = started + done / rate_per_second
    delay = due - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)
