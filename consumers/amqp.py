"""Consume the five domain queues, each on its own connection; the one place that acks,
dead-letters or requeues.

`Handler` is what the wiring gives the consumer: it returns normally when the delivery is done
(ack), raises `RejectedMessage` for bad input (dead-letter a copy through `herald.dlx`, confirmed,
then ack), and raises anything else for a failure that may pass (requeue after a backoff; the
queue's `x-delivery-limit` is the safety net for a message that fails every time).
Each delivery's work runs in a task of its own, which a closed channel or connection does not
cancel: a send in progress finishes and is recorded, and the redelivery finds it done. Only a
shutdown past its grace cancels the work, leaving the delivery unacked: the broker requeues it
when the channel closes. A header table over `MAX_HEADER_BYTES` is bad input in itself
(`headers_too_large`), and every copy Herald publishes is bounded, so no message can make a
publish exceed the broker's frame limit. aio-pika's `message.process()` is deliberately not
used: it rejects without requeue on any exception, cancellation included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from math import ceil
from typing import Any, Protocol

from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aiormq.exceptions import AMQPError
from yarl import URL

from herald.consumers.connection import connect_with_retry
from herald.consumers.copies import ORIGINAL_ROUTING_KEY_HEADER as ORIGINAL_ROUTING_KEY_HEADER
from herald.consumers.copies import (
    check_header_size,
    dead_letter_copy,
    retry_copy,
)
from herald.consumers.delivery import InboundMessage
from herald.consumers.poison import (
    MAX_ATTEMPTS_ALONE,
    AttemptLog,
    Isolation,
    delivery_count,
    identity,
)
from herald.consumers.queue_stats import QueueAges, QueueStats, queue_depth
from herald.consumers.topology import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    DEFAULT_RETRY_DELAYS_MS,
    DOMAINS,
    declare,
    declare_domain_queue,
    queue_name,
    retry_queue_name,
)
from herald.errors import (
    BrokerUnreachable,
    HeraldError,
    RejectedMessage,
    TransientError,
    retry_reason,
)
from herald.faultpoints import crash_point

log = logging.getLogger(__name__)

# Returns how the delivery ended when it is acked: "processed", "ignored" or "duplicate".
Handler = Callable[[InboundMessage], Awaitable[str]]


class ConsumerObserver(Protocol):
    """Hooks the wiring uses for metrics; the consumer never imports prometheus."""

    def received(self, domain: str) -> None: ...
    def dead_lettered(self, domain: str, reason: str) -> None: ...
    def requeued(self, domain: str) -> None: ...
    def retried(self, domain: str, delay_ms: int, reason: str) -> None: ...
    def handled(self, domain: str, seconds: float) -> None: ...
    def reconnected(self, domain: str) -> None:
        """The domain's broker connection was lost and has been restored."""
        ...

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
    # A broker operation Herald waits on while stopping (cancel, close) gives up after this.
    stop_timeout_seconds: float = 5.0


# After this many failed publishes of one message's full dead-letter copy, the copy leaves the
# publisher's headers out: whatever about them keeps failing (or closing the connection), the
# message still ends in the dead-letter queue after a bounded number of tries, even where the
# broker's delivery limit does not count a connection loss.
MAX_COPY_FAILURES = 3
_REMEMBERED_FAILURES = 10_000


@dataclass
class _DomainLink:
    """One domain's own connection, channels and consumer: a message that breaks a connection
    stops only its own domain, never the other four."""

    domain: str
    connection: AbstractRobustConnection
    # Robust channels are weakly referenced by their connection: keep them here.
    consume_channel: AbstractRobustChannel
    publish_channel: AbstractRobustChannel
    queue: AbstractQueue
    dead_letter_exchange: AbstractExchange
    consumer_tag: str | None = None
    cancelled_by_broker: bool = False
    on_cancel: Callable[[], None] | None = None
    isolation: Isolation = field(default_factory=Isolation)

    def broker_cancelled(self, frame: Any) -> None:
        """aiormq's callback for a broker's basic.cancel on the consume channel."""
        if self.consumer_tag is not None and getattr(frame, "consumer_tag", None) == (
            self.consumer_tag
        ):
            self.cancelled_by_broker = True
            if self.on_cancel is not None:
                self.on_cancel()

    @property
    def ready(self) -> bool:
        return (
            self.connection.connected.is_set()
            and not self.consume_channel.is_closed
            and (self.consumer_tag is not None or self.isolation.isolating)
        )


class DomainConsumers:
    """A consumer for each of the five domain queues, each on its own robust connection, plus
    one connection that declares the topology and samples the queues."""

    def __init__(
        self,
        options: ConsumerOptions,
        handler: Handler,
        observer: ConsumerObserver,
        attempts: AttemptLog | None = None,
    ) -> None:
        self._options = options
        self._attempts = attempts
        self._stopping = False
        self._handler = handler
        self._observer = observer
        self._watch_connection: AbstractRobustConnection | None = None
        self._watch_channel: AbstractRobustChannel | None = None
        self._links: dict[str, _DomainLink] = {}
        self._queue_ages = QueueAges()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._copy_failures: dict[str, int] = {}
        self._login: str | None = None
        self._pause_reasons: set[str] = set()
        self._cancelled = asyncio.Event()
        self._watchdog_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._login = URL(self._options.url).user
        self._watch_connection = await connect_with_retry(
            self._options.url,
            f"{self._options.connection_name}-watch",
            self._options.connect_attempts,
        )
        watch_channel = await self._watch_connection.channel()
        assert isinstance(watch_channel, AbstractRobustChannel)
        self._watch_channel = watch_channel
        await declare(watch_channel, self._options.retry_delays_ms)
        for domain in DOMAINS:
            self._links[domain] = await self._open_link(domain)
        self._watchdog_task = asyncio.create_task(self._watchdog(), name="herald-consumer-watchdog")
        log.info("consuming", extra={"queues": sorted(queue_name(d) for d in self._links)})

    async def _open_link(self, domain: str) -> _DomainLink:
        connection = await connect_with_retry(
            self._options.url,
            f"{self._options.connection_name}-{domain}",
            self._options.connect_attempts,
        )
        connection.reconnect_callbacks.add(lambda *_: self._observer.reconnected(domain))
        consume_channel = await connection.channel()
        assert isinstance(consume_channel, AbstractRobustChannel)
        await consume_channel.set_qos(prefetch_count=self._options.prefetch)
        publish_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        assert isinstance(publish_channel, AbstractRobustChannel)
        queue = await declare_domain_queue(consume_channel, domain)
        link = _DomainLink(
            domain=domain,
            connection=connection,
            consume_channel=consume_channel,
            publish_channel=publish_channel,
            queue=queue,
            dead_letter_exchange=await publish_channel.get_exchange(
                DEAD_LETTER_EXCHANGE, ensure=False
            ),
            on_cancel=self._cancelled.set,
        )
        if not self._pause_reasons:
            link.consumer_tag = await queue.consume(self._consumer_for(link), no_ack=False)
        await self._watch_for_broker_cancel(link)
        return link

    async def _watch_for_broker_cancel(self, link: _DomainLink) -> None:
        """Hear the broker cancel the link's consumer (its queue deleted, a node gone). The
        underlying channel changes on every reconnect, so the watchdog calls this again."""
        if link.connection.connected.is_set() and not link.consume_channel.is_closed:
            underlay = await link.consume_channel.get_underlay_channel()
            underlay.on_consumer_cancel_callbacks.add(link.broker_cancelled)

    async def _watchdog(self, interval_seconds: float = 1.0) -> None:
        """Replace a domain's connection whose consumer the broker cancelled, and consume
        again where an earlier consume failed (the connection was down when the last suspect
        settled or consuming resumed: without this the domain would never consume again).

        aio-pika restores such a consumer by itself, but deliveries that reach the client
        before the consumer tag is back are dropped by aiormq and stay unacked on that channel
        for good: the domain stalls while the broker shows a consumer. Closing the connection
        returns them to the queue, and a new one consumes them."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._cancelled.wait(), interval_seconds)
            self._cancelled.clear()
            for domain, link in list(self._links.items()):
                try:
                    if link.cancelled_by_broker:
                        await self._replace_link(domain, link)
                        continue
                    await asyncio.wait_for(self._watch_for_broker_cancel(link), 1)
                    if self._should_consume(link) and link.connection.connected.is_set():
                        await self._consume(link)  # a consume that failed earlier
                except (
                    AMQPError,
                    BrokerUnreachable,  # reopening the connection failed: the next pass retries
                    ConnectionError,
                    RuntimeError,
                    TimeoutError,
                ) as exc:
                    log.warning(
                        "watchdog pass failed", extra={"domain": domain, "error": repr(exc)}
                    )

    async def _replace_link(self, domain: str, old: _DomainLink) -> None:
        log.warning(
            "the broker cancelled the consumer: reopening the domain's connection",
            extra={"domain": domain},
        )
        old.consumer_tag = None
        self._links[domain] = await self._open_link(domain)
        self._observer.reconnected(domain)
        await self._close(old.connection)

    async def queue_stats(self) -> dict[str, QueueStats]:
        """Depth and consumers of each domain queue and the DLQ, and the domain queues'
        oldest-message age."""
        channel = self._watch_channel
        if channel is None or channel.is_closed:
            return {}
        stats: dict[str, QueueStats] = {}
        for domain in self._links:
            name = queue_name(domain)
            messages, consumers = await queue_depth(channel, name)
            age = self._queue_ages.domain_age(domain, messages)
            stats[name] = QueueStats(messages, consumers, age)
        # The dead-letter queue's age is the ledger's to tell (`ledger.queue_marks`): a peek
        # would reorder its messages under the replay tool.
        messages, consumers = await queue_depth(channel, DEAD_LETTER_QUEUE)
        stats[DEAD_LETTER_QUEUE] = QueueStats(messages, consumers, None)
        return stats

    @property
    def paused(self) -> bool:
        return bool(self._pause_reasons)

    async def pause(self, reason: str) -> None:
        """Stop taking new deliveries on every queue while `reason` holds (a configuration
        fault, the ledger away); in-flight ones finish normally. The connections stay open."""
        first = not self._pause_reasons
        self._pause_reasons.add(reason)
        if first:
            await self._cancel_consumers()
            log.warning("consuming paused", extra={"reason": reason})

    async def resume(self, reason: str) -> None:
        """Consume again once no reason to pause is left."""
        if reason not in self._pause_reasons:
            return
        self._pause_reasons.discard(reason)
        if self._pause_reasons:
            return
        for link in self._links.values():
            if not link.isolation.isolating:  # the last suspect out consumes again
                await self._consume(link)
        log.warning("consuming resumed", extra={"reason": reason})

    def _should_consume(self, link: _DomainLink) -> bool:
        return (
            link.consumer_tag is None
            and not link.isolation.isolating
            and not self._pause_reasons
            and not self._stopping
        )

    async def _consume(self, link: _DomainLink) -> None:
        """Consume the link's queue again if nothing holds it back. A failure (the connection
        is down) is left to the watchdog, which tries again every second."""
        if not self._should_consume(link):
            return
        try:
            link.consumer_tag = await asyncio.wait_for(
                link.queue.consume(self._consumer_for(link), no_ack=False),
                self._options.stop_timeout_seconds,
            )
        except (AMQPError, ConnectionError, RuntimeError, TimeoutError) as exc:
            log.warning(
                "could not consume, retrying", extra={"domain": link.domain, "error": repr(exc)}
            )

    async def _cancel_consumers(self) -> None:
        await asyncio.gather(*(self._cancel_consumer(link) for link in self._links.values()))

    async def _cancel_consumer(self, link: _DomainLink) -> None:
        tag, link.consumer_tag = link.consumer_tag, None
        if tag is None:
            return
        try:
            # Bounded as a whole: on a connection that is being restored, the cancel waits for
            # the channel before its own timeout even starts (a broker that is away would
            # keep SIGTERM waiting for ever).
            await asyncio.wait_for(link.queue.cancel(tag), self._options.stop_timeout_seconds)
        except (AMQPError, ConnectionError, RuntimeError, TimeoutError) as exc:
            log.warning("cancel failed", extra={"domain": link.domain, "error": repr(exc)})

    @property
    def ready(self) -> bool:
        """True while every domain's connection is up and its queue has our consumer."""
        watch = self._watch_connection
        return (
            watch is not None
            and watch.connected.is_set()
            and len(self._links) == len(DOMAINS)
            and all(link.ready for link in self._links.values())
        )

    async def stop(self, grace_seconds: float) -> None:
        """Stop taking deliveries, let in-flight ones finish within the grace, then close."""
        self._stopping = True
        if self._watchdog_task is not None:
            self._watchdog_task.cancel()
            await asyncio.gather(self._watchdog_task, return_exceptions=True)
        await self._cancel_consumers()
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=grace_seconds)
            for task in pending:
                task.cancel()  # their deliveries stay unacked and are requeued on close
            if pending:
                await asyncio.wait(pending, timeout=self._options.stop_timeout_seconds)
        connections = [link.connection for link in self._links.values()]
        if self._watch_connection is not None:
            connections.append(self._watch_connection)
        await asyncio.gather(*(self._close(connection) for connection in connections))

    async def _close(self, connection: AbstractRobustConnection) -> None:
        try:
            await asyncio.wait_for(connection.close(), self._options.stop_timeout_seconds)
        except (AMQPError, ConnectionError, RuntimeError, TimeoutError) as exc:
            log.warning("connection did not close cleanly", extra={"error": repr(exc)})

    def _consumer_for(
        self, link: _DomainLink
    ) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        async def on_message(message: AbstractIncomingMessage) -> None:
            # The work runs in a task of its own: aiormq cancels this callback when the channel
            # or connection closes, and a send in progress must finish and be recorded (the
            # redelivery then finds it done) rather than be cut off and sent again.
            if self._attempts is not None and delivery_count(message) > 0:
                work = asyncio.create_task(self._settle_alone(link, message))
            else:
                work = asyncio.create_task(self._settle_ordinary(link, message))
            self._in_flight.add(work)
            work.add_done_callback(self._in_flight.discard)
            await asyncio.shield(work)

        return on_message

    async def _settle_ordinary(self, link: _DomainLink, message: AbstractIncomingMessage) -> None:
        async with link.isolation.ordinary():
            await self._settle(link, message)

    async def _settle_alone(self, link: _DomainLink, message: AbstractIncomingMessage) -> None:
        """A redelivered message: processed alone, its attempt counted durably (see
        `consumers.poison`)."""

        async def stop_intake() -> None:
            await self._cancel_consumer(link)

        async def resume_intake() -> None:
            await self._consume(link)

        async with link.isolation.alone(stop_intake, resume_intake):
            await self._settle(link, message, alone=True)

    async def _settle(
        self, link: _DomainLink, message: AbstractIncomingMessage, alone: bool = False
    ) -> None:
        """The single ack point."""
        domain = link.domain
        self._observer.received(domain)
        self._queue_ages.taken(domain, message.timestamp)
        started = asyncio.get_running_loop().time()
        outcome = "interrupted"  # cancelled (shutdown): unacked, the broker redelivers it
        inbound: InboundMessage | None = None
        attempt: str | None = None
        try:
            if alone and self._attempts is not None:
                attempt = identity(link.queue.name, message)
                await self._check_attempts(attempt)
            crash_point("on_receive", message.message_id)
            check_header_size(message.headers)
            inbound = to_inbound(message, link.queue.name)
            handled = await self._handler(inbound)
        except RejectedMessage as rejection:
            routing_key = inbound.routing_key if inbound else (message.routing_key or "")
            outcome = await self._dead_letter(link, message, rejection, routing_key)
        except asyncio.CancelledError:
            raise
        except TransientError as exc:
            log.warning(
                "transient failure, retrying through the broker",
                extra={"domain": domain, "error": f"{type(exc).__name__}: {exc}"},
            )
            outcome = await self._retry_later(
                link, message, retry_reason(exc), exc.retry_after_seconds
            )
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
            crash_point("before_ack", message.message_id)
            await _settle_quietly(message.ack())
        finally:
            self._observer.handled(domain, asyncio.get_running_loop().time() - started)
            self._observer.accounted(domain, outcome)
            if attempt is not None and outcome != "interrupted":
                await self._end_attempt(attempt)

    async def _check_attempts(self, attempt: str) -> None:
        """Count this attempt; refuse a message that ended the process too often."""
        assert self._attempts is not None
        try:
            attempts = await self._attempts.begin(attempt)
        except HeraldError:
            raise
        except Exception as exc:
            raise TransientError(f"attempt log unavailable: {type(exc).__name__}") from exc
        if attempts > MAX_ATTEMPTS_ALONE:
            raise RejectedMessage(
                "delivery_limit",
                f"the process ended {attempts - 1} times while processing this message alone "
                "(Herald's own count)",
            )

    async def _end_attempt(self, attempt: str) -> None:
        assert self._attempts is not None
        try:
            await self._attempts.end(attempt)
        except Exception as exc:  # a row left behind costs one extra count, if it ever returns
            log.warning("could not end a delivery attempt", extra={"error": type(exc).__name__})

    async def _dead_letter(
        self,
        link: _DomainLink,
        message: AbstractIncomingMessage,
        rejection: RejectedMessage,
        routing_key: str,
    ) -> str:
        domain = link.domain
        copy_key = identity(link.queue.name, message)
        failures = self._copy_failures.get(copy_key, 0)
        copy = dead_letter_copy(
            message,
            rejection,
            login=self._login,
            queue=link.queue.name,
            routing_key=routing_key,
            keep_headers=failures < MAX_COPY_FAILURES,
        )
        try:
            await link.dead_letter_exchange.publish(
                copy,
                routing_key=message.routing_key or "",
                mandatory=True,
                timeout=self._options.publish_timeout_seconds,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Not confirmed: never ack the original, it comes back and we try again.
            if not isinstance(exc, TimeoutError):  # a broker that is slow is not the copy's fault
                self._remember_copy_failure(copy_key, failures + 1)
            log.error(
                "dead-letter publish failed, requeueing",
                extra={
                    "domain": domain,
                    "error": f"{type(exc).__name__}: {exc}",
                    "attempt": failures + 1,
                },
            )
            await self._requeue_after_backoff(domain, message)
            return "requeued"
        self._copy_failures.pop(copy_key, None)
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
                "headers_kept": failures < MAX_COPY_FAILURES,
            },
        )
        return "dead_lettered"

    def _remember_copy_failure(self, identity: str, failures: int) -> None:
        self._copy_failures.pop(identity, None)
        self._copy_failures[identity] = failures
        while len(self._copy_failures) > _REMEMBERED_FAILURES:
            del self._copy_failures[next(iter(self._copy_failures))]

    async def _retry_later(
        self,
        link: _DomainLink,
        message: AbstractIncomingMessage,
        reason: str,
        retry_after_seconds: float | None = None,
    ) -> str:
        """Park a copy in the domain's retry queue for the next delay (a longer one when the
        failure asked to wait, `copies.retry_delay_ms`), confirmed, then ack the original.
        Never through portal.events, whose other consumers already had the event."""
        domain = link.domain
        not_before_ms = None if retry_after_seconds is None else ceil(retry_after_seconds * 1000)
        copy, delay_ms = retry_copy(message, self._options.retry_delays_ms, not_before_ms)
        try:
            await link.publish_channel.default_exchange.publish(
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
        attempts = delivery_count(message)
        ceiling = min(
            self._options.requeue_max_seconds,
            self._options.requeue_base_seconds * (2 ** min(attempts, 16)),
        )
        await asyncio.sleep(random.uniform(ceiling / 2, ceiling))  # noqa: S311 (jitter)
        # reject, not nack: RabbitMQ 4.3+ counts only rejects toward x-delivery-limit.
        await _settle_quietly(message.reject(requeue=True))
        self._observer.requeued(domain)


async def _settle_quietly(settlement: Awaitable[None]) -> None:
    """Ack/reject on a channel that closed meanwhile fails; the broker redelivers, and the
    ledger makes the redelivery harmless."""
    try:
        await settlement
    except (AMQPError, ConnectionError, RuntimeError) as exc:
        log.warning("could not settle delivery", extra={"error": repr(exc)})


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
        delivery_count=delivery_count(message),
        received_at=time.monotonic(),
    )
