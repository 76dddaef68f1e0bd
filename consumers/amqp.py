"""Consume the five domain queues; the one place that acks, dead-letters or requeues.

`Handler` is what the wiring gives the consumer: it returns normally when the delivery is done
(ack), raises `RejectedMessage` for bad input (dead-letter a copy through `herald.dlx`, confirmed,
then ack), and raises anything else for a failure that may pass (requeue after a backoff; the
queue's `x-delivery-limit` is the safety net for a message that fails every time).
Cancellation (shutdown) leaves the delivery unacked: the broker requeues it when the channel
closes. aio-pika's `message.process()` is deliberately not used: it rejects without requeue on
any exception, cancellation included.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aiormq.exceptions import AMQPError
from yarl import URL

from consumers.delivery import InboundMessage
from consumers.topology import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    DEFAULT_RETRY_DELAYS_MS,
    DOMAINS,
    declare,
    retry_queue_name,
)
from herald.errors import HeraldError, RejectedMessage, TransientError, retry_reason

log = logging.getLogger(__name__)

# Returns how the delivery ended when it is acked: "processed", "ignored" or "duplicate".
Handler = Callable[[InboundMessage], Awaitable[str]]
ORIGINAL_ROUTING_KEY_HEADER = "x-herald-original-routing-key"


class ConsumerObserver(Protocol):
    """Hooks the wiring uses for metrics; the consumer never imports prometheus."""

    def received(self, domain: str) -> None: ...
    def dead_lettered(self, domain: str, reason: str) -> None: ...
    def requeued(self, domain: str) -> None: ...
    def retried(self, domain: str, delay_ms: int, reason: str) -> None: ...
    def handled(self, domain: str, seconds: float) -> None: ...
    def accounted(self, domain: str, outcome: str) -> None:
        """Exactly once per delivery taken: how it ended (processed, ignored, duplicate,
        dead_lettered, retrying, requeued, interrupted)."""
        ...


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    url: str
    prefetch: int = 64
    connection_name: str = "herald"
    requeue_base_seconds: float = 1.0
    requeue_max_seconds: float = 60.0
    publish_timeout_seconds: float = 10.0
    connect_attempts: int = 30
    retry_delays_ms: tuple[int, ...] = DEFAULT_RETRY_DELAYS_MS


class DomainConsumers:
    """Consumers for all five domain queues on one robust connection."""

    def __init__(
        self, options: ConsumerOptions, handler: Handler, observer: ConsumerObserver
    ) -> None:
        self._options = options
        self._handler = handler
        self._observer = observer
        self._connection: AbstractRobustConnection | None = None
        # Robust channels are weakly referenced by their connection: keep them here.
        self._consume_channel: AbstractRobustChannel | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._watch_channel: AbstractRobustChannel | None = None
        self._queue_ages = QueueAges()
        self._queues: dict[str, AbstractQueue] = {}
        self._consumer_tags: dict[str, str] = {}
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._login: str | None = None
        self._dlx: AbstractExchange | None = None
        self._paused = False

    async def start(self) -> None:
        self._connection = await connect_with_retry(
            self._options.url, self._options.connection_name, self._options.connect_attempts
        )
        self._login = URL(self._options.url).user
        consume_channel = await self._connection.channel()
        assert isinstance(consume_channel, AbstractRobustChannel)
        await consume_channel.set_qos(prefetch_count=self._options.prefetch)
        publish_channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        assert isinstance(publish_channel, AbstractRobustChannel)
        watch_channel = await self._connection.channel()
        assert isinstance(watch_channel, AbstractRobustChannel)
        self._consume_channel, self._publish_channel = consume_channel, publish_channel
        self._watch_channel = watch_channel
        topology = await declare(consume_channel, self._options.retry_delays_ms)
        self._dlx = await publish_channel.get_exchange(DEAD_LETTER_EXCHANGE, ensure=False)
        for domain in DOMAINS:
            queue = topology.queues[domain]
            self._queues[domain] = queue
            self._consumer_tags[domain] = await queue.consume(
                self._consumer_for(domain), no_ack=False
            )
        log.info("consuming", extra={"queues": sorted(q.name for q in self._queues.values())})

    async def queue_stats(self) -> dict[str, QueueStats]:
        """Depth and consumers of each domain queue and the DLQ, and the domain queues'
        oldest-message age."""
        channel = self._watch_channel
        if channel is None or channel.is_closed:
            return {}
        stats: dict[str, QueueStats] = {}
        for domain, queue in self._queues.items():
            messages, consumers = await _depth(channel, queue.name)
            age = self._queue_ages.domain_age(domain, messages)
            stats[queue.name] = QueueStats(messages, consumers, age)
        # The dead-letter queue's age is the ledger's to tell (`ledger.queue_marks`): a peek
        # would reorder its messages under the replay tool.
        messages, consumers = await _depth(channel, DEAD_LETTER_QUEUE)
        stats[DEAD_LETTER_QUEUE] = QueueStats(messages, consumers, None)
        return stats

    @property
    def paused(self) -> bool:
        return self._paused

    async def pause(self) -> None:
        """Stop taking new deliveries on every queue (a configuration fault); in-flight ones
        finish normally. The connection stays open."""
        if self._paused:
            return
        self._paused = True
        await self._cancel_consumers()
        log.warning("consuming paused")

    async def resume(self) -> None:
        if not self._paused:
            return
        for domain, queue in self._queues.items():
            self._consumer_tags[domain] = await queue.consume(
                self._consumer_for(domain), no_ack=False
            )
        self._paused = False
        log.warning("consuming resumed")

    async def _cancel_consumers(self) -> None:
        for domain, tag in list(self._consumer_tags.items()):
            try:
                await self._queues[domain].cancel(tag)
            except (AMQPError, ConnectionError, RuntimeError) as exc:
                log.warning("cancel failed", extra={"domain": domain, "error": repr(exc)})
            del self._consumer_tags[domain]

    @property
    def ready(self) -> bool:
        """True while the connection is up and every domain queue has our consumer."""
        connection = self._connection
        channel = self._consume_channel
        return (
            connection is not None
            and connection.connected.is_set()
            and channel is not None
            and not channel.is_closed
            and len(self._consumer_tags) == len(DOMAINS)
        )

    async def stop(self, grace_seconds: float) -> None:
        """Stop taking deliveries, let in-flight ones finish within the grace, then close."""
        await self._cancel_consumers()
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=grace_seconds)
            for task in pending:
                task.cancel()  # their deliveries stay unacked and are requeued on close
            if pending:
                await asyncio.wait(pending, timeout=5)
        if self._connection is not None:
            await self._connection.close()

    def _consumer_for(self, domain: str) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        async def on_message(message: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.add(task)
            try:
                await self._settle(domain, message)
            finally:
                if task is not None:
                    self._in_flight.discard(task)

        return on_message

    async def _settle(self, domain: str, message: AbstractIncomingMessage) -> None:
        """The single ack point."""
        self._observer.received(domain)
        self._queue_ages.taken(domain, message.timestamp)
        started = asyncio.get_running_loop().time()
        outcome = "interrupted"  # cancelled (shutdown): unacked, the broker redelivers it
        try:
            handled = await self._handler(to_inbound(message, self._queues[domain].name))
        except RejectedMessage as rejection:
            outcome = await self._dead_letter(domain, message, rejection)
        except asyncio.CancelledError:
            raise
        except TransientError as exc:
            log.warning(
                "transient failure, retrying through the broker",
                extra={"domain": domain, "error": f"{type(exc).__name__}: {exc}"},
            )
            outcome = await self._retry_later(domain, message, retry_reason(exc))
        except Exception as exc:
            expected = isinstance(exc, HeraldError)
            # Herald's own messages carry no addresses; a library's might (and its chained
            # traceback too), so only unexpected errors are logged with a traceback.
            error = f"{type(exc).__name__}: {exc}" if expected else type(exc).__name__
            log.warning(
                "processing failed, will retry",
                extra={"domain": domain, "error": error},
                exc_info=not expected,
            )
            outcome = "requeued"
            await self._requeue_after_backoff(domain, message)
        else:
            outcome = handled
            await _settle_quietly(message.ack())
        finally:
            self._observer.handled(domain, asyncio.get_running_loop().time() - started)
            self._observer.accounted(domain, outcome)

    async def _dead_letter(
        self, domain: str, message: AbstractIncomingMessage, rejection: RejectedMessage
    ) -> str:
        copy = dead_letter_copy(message, rejection, login=self._login)
        try:
            if self._dlx is None:
                raise RuntimeError("the dead-letter exchange is not ready")
            await self._dlx.publish(
                copy,
                routing_key=message.routing_key or "",
                mandatory=True,
                timeout=self._options.publish_timeout_seconds,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Not confirmed: never ack the original, it comes back and we try again.
            log.error(
                "dead-letter publish failed, requeueing",
                extra={"domain": domain, "error": f"{type(exc).__name__}: {exc}"},
            )
            await self._requeue_after_backoff(domain, message)
            return "requeued"
        await _settle_quietly(message.ack())
        self._observer.dead_lettered(domain, rejection.reason)
        log.warning(
            "dead-lettered",
            extra={
                "domain": domain,
                "reason": rejection.reason,
                "detail": rejection.detail,
                "event_id": _printable(message.message_id),
                "event_type": _printable(message.routing_key),
            },
        )
        return "dead_lettered"

    async def _retry_later(self, domain: str, message: AbstractIncomingMessage, reason: str) -> str:
        """Park a copy in the domain's retry queue for the next delay, confirmed, then ack the
        original. Never through portal.events, whose other consumers already had the event."""
        copy, delay_ms = retry_copy(message, self._options.retry_delays_ms)
        try:
            if self._publish_channel is None:
                raise RuntimeError("the publishing channel is not ready")
            await self._publish_channel.default_exchange.publish(
                copy,
                routing_key=retry_queue_name(domain, delay_ms),
                mandatory=True,
                timeout=self._options.publish_timeout_seconds,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error(
                "retry publish failed, requeueing",
                extra={"domain": domain, "error": f"{type(exc).__name__}: {exc}"},
            )
            await self._requeue_after_backoff(domain, message)
            return "requeued"
        await _settle_quietly(message.ack())
        self._observer.retried(domain, delay_ms, reason)
        return "retrying"

    async def _requeue_after_backoff(self, domain: str, message: AbstractIncomingMessage) -> None:
        attempts = _delivery_count(message)
        ceiling = min(
            self._options.requeue_max_seconds,
            self._options.requeue_base_seconds * (2 ** min(attempts, 16)),
        )
        await asyncio.sleep(random.uniform(ceiling / 2, ceiling))  # noqa: S311 (jitter)
        # reject, not nack: RabbitMQ 4.3+ counts only rejects toward x-delivery-limit.
        await _settle_quietly(message.reject(requeue=True))
        self._observer.requeued(domain)


@dataclass(frozen=True, slots=True)
class QueueStats:
    messages: int  # ready
    consumers: int
    oldest_age_seconds: float | None  # None: not known here


@dataclass
class QueueAges:
    """How old the oldest ready message of each queue is, without consuming it.

    A domain queue cannot be peeked (a requeue counts towards `x-delivery-limit`), so its age is
    an upper bound: the queue is FIFO, so the head is younger than the last message taken
    (by its AMQP `timestamp`, else the time it was taken). While nothing has been taken, it is
    the time the queue has been seen non-empty.
    """

    last_published: dict[str, float] = field(default_factory=dict)
    nonempty_since: dict[str, float] = field(default_factory=dict)

    def taken(self, domain: str, published: datetime | None) -> None:
        self.last_published[domain] = (
            published.timestamp() if published is not None else time.time()
        )

    def domain_age(self, domain: str, messages: int) -> float:
        if messages == 0:
            self.seen_empty(domain)
            return 0.0
        since = self.seen_nonempty(domain)
        last = self.last_published.get(domain)
        return since if last is None else max(0.0, time.time() - last)

    def seen_nonempty(self, key: str) -> float:
        now = time.time()
        return now - self.nonempty_since.setdefault(key, now)

    def seen_empty(self, key: str) -> None:
        self.nonempty_since.pop(key, None)


async def _depth(channel: AbstractRobustChannel, name: str) -> tuple[int, int]:
    # Not `channel.declare_queue(passive=True)`: a robust channel hands back its cached queue,
    # whose declaration result is the first one's, so the counts would never change.
    underlay = await channel.get_underlay_channel()
    result = await underlay.queue_declare(name, passive=True)
    return int(result.message_count or 0), int(result.consumer_count or 0)


def rejection_time(headers: Mapping[str, Any], timestamp: datetime | None) -> datetime | None:
    """When a dead letter was rejected: Herald's `x-rejected-at`, else the broker's `x-death`
    time (delivery limit), else the message's `timestamp`."""
    rejected_at = headers.get("x-rejected-at")
    if isinstance(rejected_at, bytes):
        rejected_at = rejected_at.decode(errors="replace")
    if isinstance(rejected_at, str):
        try:
            return datetime.fromisoformat(rejected_at)
        except ValueError:
            pass
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        died = deaths[0].get("time")
        if isinstance(died, datetime):
            return died if died.tzinfo else died.replace(tzinfo=UTC)
    if timestamp is not None:
        return timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
    return None


async def _settle_quietly(settlement: Awaitable[None]) -> None:
    """Ack/reject on a channel that closed meanwhile fails; the broker redelivers, and the
    ledger makes the redelivery harmless."""
    try:
        await settlement
    except (AMQPError, ConnectionError, RuntimeError) as exc:
        log.warning("could not settle delivery", extra={"error": repr(exc)})


def _delivery_count(message: AbstractIncomingMessage) -> int:
    count = (message.headers or {}).get("x-delivery-count", 0)
    return count if isinstance(count, int) else 0


def _printable(value: str | None) -> str | None:
    return None if value is None else value[:255].encode("ascii", "replace").decode()


def to_inbound(message: AbstractIncomingMessage, queue: str) -> InboundMessage:
    headers = message.headers or {}
    routing_key = message.routing_key or ""
    replayed_key = headers.get(ORIGINAL_ROUTING_KEY_HEADER)
    if message.exchange == "" and isinstance(replayed_key, (str, bytes)):
        # Replayed by Herald's dead-letter tool through the default exchange.
        routing_key = replayed_key.decode() if isinstance(replayed_key, bytes) else replayed_key
    return InboundMessage(
        body=message.body,
        routing_key=routing_key,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        message_id=message.message_id,
        queue=queue,
        redelivered=bool(message.redelivered),
        delivery_count=_delivery_count(message),
        received_at=time.monotonic(),
    )


ATTEMPT_HEADER = "x-herald-attempt"
FIRST_FAILURE_HEADER = "x-herald-first-failure-at"


def retry_copy(
    message: AbstractIncomingMessage, delays_ms: tuple[int, ...]
) -> tuple[aio_pika.Message, int]:
    """The same body and properties with Herald's own attempt counter (the broker ignores a
    client's `x-death`), the original routing key and the time of the first failure."""
    headers: dict[str, Any] = dict(message.headers or {})
    attempt = headers.get(ATTEMPT_HEADER, 0)
    attempt = (attempt if isinstance(attempt, int) else 0) + 1
    headers[ATTEMPT_HEADER] = attempt
    headers.setdefault(FIRST_FAILURE_HEADER, datetime.now(UTC).isoformat(timespec="seconds"))
    if message.exchange != "" or ORIGINAL_ROUTING_KEY_HEADER not in headers:
        headers[ORIGINAL_ROUTING_KEY_HEADER] = message.routing_key or ""
    headers.pop("x-death", None)  # the broker's own record of the retry hops; not ours to keep
    delay_ms = delays_ms[min(attempt, len(delays_ms)) - 1]
    return _copy_with_headers(message, headers), delay_ms


def _copy_with_headers(
    message: AbstractIncomingMessage, headers: dict[str, Any]
) -> aio_pika.Message:
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )


def dead_letter_copy(
    message: AbstractIncomingMessage, rejection: RejectedMessage, login: str | None
) -> aio_pika.Message:
    """The original body and properties, plus the headers of EVENTS.md section 11."""
    headers: dict[str, Any] = dict(message.headers or {})
    headers.update(
        {
            "x-reject-reason": rejection.reason,
            "x-reject-detail": rejection.detail,
            "x-rejected-at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "x-original-exchange": message.exchange or "",
            "x-original-routing-key": message.routing_key or "",
            "x-rejected-by": "herald",
        }
    )
    if message.message_id is None:
        # aiormq gives every publish a message_id; say that the original had none.
        headers["x-original-message-id-absent"] = True
    if message.expiration is not None:
        # A per-message TTL would let the broker drop the copy from the dead-letter queue.
        headers["x-original-expiration"] = str(message.expiration)
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        # The broker rejects a user_id that is not the publishing connection's own.
        user_id=message.user_id if message.user_id == login else None,
        app_id=message.app_id,
    )


async def connect_with_retry(
    url: str, name: str, attempts: int, delay_seconds: float = 2.0
) -> AbstractRobustConnection:
    """`connect_robust` does not retry the first connect (aio-pika #202): do it here."""
    for attempt in range(1, attempts + 1):
        try:
            return await aio_pika.connect_robust(url, client_properties={"connection_name": name})
        except (AMQPError, ConnectionError, OSError) as exc:
            if attempt == attempts:
                raise
            log.warning(
                "broker not reachable, retrying",
                extra={"attempt": attempt, "error": f"{type(exc).__name__}"},
            )
            await asyncio.sleep(delay_seconds)
    raise AssertionError("unreachable")
