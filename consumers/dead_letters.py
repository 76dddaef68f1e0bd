"""The dead-letter queue as the replay tool sees it: browse without consuming, then settle each
message (remove it, or return it to its place), and publish copies back with confirms.

Browsing takes messages one at a time with `basic.get` and holds them unacked: nothing is lost
if the tool dies (the broker returns held messages when the connection closes, in their order),
and returning the ones not removed keeps the queue's order (quorum queues serve returned
messages first). The session remembers only the delivery tag of each message taken, so a caller
that drops a message it does not want frees its body. A message is removed only after whatever
replaced it was confirmed by the broker.

Where a dead letter came from is read only from what Herald or the broker wrote
(`StoredMessage.original_queue`, `original_routing_key`, `reason`): a publisher can set any
header, so a copy Herald wrote (no `x-death`) is read through Herald's headers, and one the
broker dead-lettered (`x-death`) through the broker's.

This module knows AMQP only; filtering, validation and auditing are the caller's
(`herald.tools.replay`).
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

from herald.consumers.connection import broker_unreachable
from herald.consumers.copies import ORIGINAL_ROUTING_KEY_HEADER
from herald.consumers.queue_stats import rejection_time
from herald.consumers.topology import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    DOMAINS,
    queue_name,
)

# Set by the broker on each delivery of a quorum queue message: not part of the message.
BROKER_DELIVERY_HEADERS = frozenset({"x-delivery-count"})
REPLAY_COUNT_HEADER = "x-herald-replay-count"
REPLAYED_AT_HEADER = "x-herald-replayed-at"
REPLAYED_BY_HEADER = "x-herald-replayed-by"
# Written by Herald's consumer on its dead-letter copy: the queue the message was taken from.
ORIGINAL_QUEUE_HEADER = "x-original-queue"
DOMAIN_QUEUES = frozenset(queue_name(domain) for domain in DOMAINS)
# How many held messages are returned at once (see `DeadLetterSession.return_unsettled`).
RETURN_WINDOW = 16
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
    def broker_dead_lettered(self) -> bool:
        """True when RabbitMQ dead-lettered it (delivery limit): it carries `x-death`, which
        Herald's own copies never do (its consumer drops a publisher's)."""
        return bool(_deaths(self.headers))

    @property
    def original_queue(self) -> str | None:
        """The queue it was consumed from or died in, where a replay may put it back: the
        broker's `x-death[0].queue`, else Herald's `x-original-queue`, else (a copy written
        before that header) the queue of its routing key's domain."""
        return self._origin()[0]

    @property
    def original_routing_key(self) -> str:
        """The routing key Herald checked (or would check) for it: for what the broker
        dead-lettered, `x-death[0]`'s key, or Herald's replay header when it had entered the
        queue through the default exchange (Herald's retry and replay path); for Herald's copy,
        `x-original-routing-key`. Else the key it was dead-lettered with."""
        return self._origin()[1]

    def _origin(self) -> tuple[str | None, str]:
        deaths = _deaths(self.headers)
        if deaths:  # the broker's record; Herald-style headers may be a publisher's
            death = deaths[0]  # the most recent
            keys = death.get("routing-keys")
            key = _text(keys[0]) if isinstance(keys, list) and keys else None
            if _text(death.get("exchange")) == "":
                key = _text(self.headers.get(ORIGINAL_ROUTING_KEY_HEADER)) or key
            return _text(death.get("queue")), key or self.routing_key
        key = _text(self.headers.get("x-original-routing-key")) or self.routing_key
        queue = _text(self.headers.get(ORIGINAL_QUEUE_HEADER))
        if queue is not None:
            return queue, key
        if _text(self.headers.get("x-original-exchange")) == "" and key in DOMAIN_QUEUES:
            # Written before x-original-queue, for a message Herald itself had put in its queue
            # (retry or replay): that version recorded the queue's name as the routing key, and
            # the key it checked is in Herald's replay header.
            return key, _text(self.headers.get(ORIGINAL_ROUTING_KEY_HEADER)) or key
        return queue_name(key.split(".", 1)[0]), key

    @property
    def reason(self) -> str:
        """Herald's `x-reject-reason`, or for what the broker dead-lettered its reason
        (`delivery_limit`)."""
        deaths = _deaths(self.headers)
        if deaths:
            return (
                _text(deaths[0].get("reason"))
                or _text(self.headers.get("x-first-death-reason"))
                or "unknown"
            )
        return _text(self.headers.get("x-reject-reason")) or "unknown"

    @property
    def detail(self) -> str | None:
        """Herald's `x-reject-detail` (none for what the broker dead-lettered)."""
        return None if self.broker_dead_lettered else _text(self.headers.get("x-reject-detail"))

    @property
    def rejected_at(self) -> datetime | None:
        """When it was dead-lettered: the broker's `x-death[0].time`, else Herald's
        `x-rejected-at`, else the message's `timestamp`."""
        deaths = _deaths(self.headers)
        died = deaths[0].get("time") if deaths else None
        if isinstance(died, datetime):
            return died if died.tzinfo else died.replace(tzinfo=UTC)
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
    # Every delivery taken, in order, and those settled: tags only, no bodies.
    _taken: list[int] = field(default_factory=list)
    _settled: set[int] = field(default_factory=set)

    async def __aenter__(self) -> DeadLetterSession:
        try:
            self._connection = await aio_pika.connect(
                self.url, client_properties={"connection_name": self.connection_name}
            )
        except (aio_pika.exceptions.AMQPError, OSError) as exc:
            raise broker_unreachable(self.url, exc) from exc  # one line, exit 3
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

    async def depth(self) -> int:
        """How many messages the queue holds ready (those this session holds not counted)."""
        assert self._channel is not None, "use the session as an async context manager"
        underlay = await self._channel.get_underlay_channel()
        declared = await underlay.queue_declare(DEAD_LETTER_QUEUE, passive=True)
        return int(declared.message_count or 0)

    async def take(self) -> Held | None:
        """The next message, held unacked; None when the queue has no more."""
        assert self._queue is not None, "use the session as an async context manager"
        delivery = await self._queue.get(no_ack=False, fail=False, timeout=10)
        if delivery is None:
            return None
        assert delivery.delivery_tag is not None
        self._taken.append(delivery.delivery_tag)
        return Held(stored(delivery), delivery)

    async def remove(self, held: Held) -> None:
        """Delete a held message from the queue (only once its replacement is confirmed)."""
        await held.delivery.ack()
        held.settled = True
        assert held.delivery.delivery_tag is not None
        self._settled.add(held.delivery.delivery_tag)

    async def return_unsettled(self, visible_within_seconds: float = 5.0) -> None:
        """Return every held message not removed, in the order taken, and wait until the queue
        counts them as ready again, so that the next command sees them.

        RabbitMQ 3.10 puts a returned message at the tail of a quorum queue, but more than
        about 32 returns in flight at once are applied out of order (measured: rejects sent
        back to back, a `multiple` nack and a closing channel all shuffle 300 messages). So
        they go back `RETURN_WINDOW` at a time, each window applied before the next is sent:
        a read of the whole queue leaves its order as it was."""
        channel = self._channel
        if channel is None or channel.is_closed:
            return  # the broker returns them itself when the channel is gone
        unsettled = [tag for tag in self._taken if tag not in self._settled]
        self._taken.clear()
        self._settled.clear()
        if not unsettled:
            return
        underlay = await channel.get_underlay_channel()
        loop = asyncio.get_running_loop()
        for start in range(0, len(unsettled), RETURN_WINDOW):
            window = unsettled[start : start + RETURN_WINDOW]
            ready = await self.depth()
            for tag in window:
                await underlay.basic_reject(tag, requeue=True)
            deadline = loop.time() + visible_within_seconds
            # A reject has no reply; the quorum queue applies the returns a moment later.
            while loop.time() < deadline:
                if await self.depth() >= ready + len(window):
                    break
                await asyncio.sleep(0.002)

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
