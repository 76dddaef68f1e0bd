"""The event handler the consumer calls: schemas -> catalog -> renderers -> senders, with the
ledger beside them. This is the one place the stages are composed.

For each delivery the ledger is claimed first, so a redelivered or republished event never sends
twice; the delivery is settled (sent, failed, or released for a retry) before the event is marked
processed, and the event is acked only after that (EVENTS.md section 1, step 10).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from catalog.plan import Delivery, plan_event
from catalog.recipients import Directory
from catalog.spec import Catalog
from consumers.delivery import InboundMessage
from herald.errors import PermanentSendError, TransientError, TransientSendError
from herald.metrics import Metrics
from ledger.store import ClaimState, NewDelivery, SqlLedger, utc_now
from renderers.email import EmailRenderer
from schemas.decode import decode
from schemas.envelope import Event, IgnoredEvent
from senders.base import Sender

log = logging.getLogger(__name__)


class DeliveryBusy(TransientError):
    """Another worker holds this delivery's lease; the event is retried later."""


@dataclass
class _OncePerHour:
    """Log something at most once per key per hour (EVENTS.md 11, row 7)."""

    seen: dict[str, float] = field(default_factory=dict)

    def first_in_hour(self, key: str) -> bool:
        now = time.monotonic()
        last = self.seen.get(key)
        if last is not None and now - last < 3600:
            return False
        self.seen[key] = now
        return True


@dataclass
class Pipeline:
    catalog: Catalog
    directory: Directory
    renderer: EmailRenderer
    sender: Sender
    ledger: SqlLedger
    metrics: Metrics
    lease: timedelta = timedelta(minutes=10)
    retry_window: timedelta = timedelta(hours=24)
    _unknown_types: _OncePerHour = field(default_factory=_OncePerHour)

    async def handle(self, message: InboundMessage) -> None:
        decoded = decode(message)  # RejectedMessage goes back to the consumer: dead-letter
        if isinstance(decoded, IgnoredEvent):
            self._ignore(decoded)
            return
        event = decoded
        if await self.ledger.is_processed(event.source, event.id):
            self.metrics.events_duplicate.labels(event.domain).inc()
            log.info("duplicate event", extra=_event_fields(event))
            return
        planned = plan_event(event, self.catalog, self.directory)
        for spec in planned.without_recipients:
            self.metrics.notifications.labels(spec.id, "no_recipients").inc()
        results = await asyncio.gather(
            *(self._deliver(event, delivery) for delivery in planned.deliveries),
            return_exceptions=True,
        )
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            # Everything else is settled in the ledger; the redelivery retries only these.
            raise failures[0]
        await self.ledger.mark_processed(event.source, event.id, event.type)
        self.metrics.events_processed.labels(event.domain).inc()
        log.info(
            "event processed",
            extra={**_event_fields(event), "deliveries": len(planned.deliveries)},
        )

    def _ignore(self, ignored: IgnoredEvent) -> None:
        self.metrics.events_ignored.labels(ignored.domain, "unknown_type").inc()
        if self._unknown_types.first_in_hour(ignored.type):
            log.info(
                "ignoring event type this contract does not define",
                extra={"event_type": ignored.type, "source": ignored.source},
            )

    async def _deliver(self, event: Event, delivery: Delivery) -> None:
        notification = delivery.spec.id
        claim = await self.ledger.claim(
            NewDelivery(
                key=delivery.key,
                notification=notification,
                channel="email",
                event_source=event.source,
                event_id=event.id,
                recipient=delivery.recipient.email,
                message_id=self.renderer.message_id(delivery.key),
            ),
            self.lease,
        )
        if claim.state in (ClaimState.SENT, ClaimState.FAILED):
            self.metrics.notifications.labels(notification, "suppressed").inc()
            return
        if claim.state is ClaimState.BUSY:
            raise DeliveryBusy(f"{notification}: another worker is sending it")
        if utc_now() - claim.first_attempt_at > self.retry_window:
            await self.ledger.mark_failed(delivery.key, "transient failures for over 24 hours")
            self.metrics.notifications.labels(notification, "failed").inc()
            return
        try:
            started = time.perf_counter()
            email = self.renderer.render(event, delivery)
            self.metrics.render_duration.observe(time.perf_counter() - started)
            started = time.perf_counter()
            result = await self.sender.send(email)
            self.metrics.send_duration.observe(time.perf_counter() - started)
        except PermanentSendError as exc:
            await self.ledger.mark_failed(delivery.key, str(exc))
            self.metrics.notifications.labels(notification, "failed").inc()
            log.warning(
                "notification failed permanently",
                extra={**_event_fields(event), "notification": notification, "error": str(exc)},
            )
            return
        except TransientSendError as exc:
            await self.ledger.release(delivery.key, str(exc))
            self.metrics.notifications.labels(notification, "retrying").inc()
            raise
        except asyncio.CancelledError:
            # Shutdown mid-send: whether the server took it is unknown, so let the redelivery
            # send it again (same Message-ID) rather than wait for the lease to run out.
            await _shielded(self.ledger.release(delivery.key, "interrupted by shutdown"))
            raise
        except Exception as exc:
            await _shielded(self.ledger.release(delivery.key, f"{type(exc).__name__}"))
            raise
        await self.ledger.mark_sent(delivery.key, result.response[:500])
        self.metrics.notifications.labels(notification, "sent").inc()


async def _shielded(work: Coroutine[Any, Any, None]) -> None:
    """Best effort bookkeeping that must not be cut short by a cancellation."""
    try:
        await asyncio.wait_for(asyncio.shield(work), timeout=2)
    except (TimeoutError, TransientError, asyncio.CancelledError):
        log.warning("could not release a delivery claim; its lease will expire")


def _event_fields(event: Event) -> dict[str, str]:
    return {"event_id": event.id, "source": event.source, "event_type": event.type}
