"""The event handler the consumer calls: schemas -> catalog -> renderers -> senders, with the
ledger beside them. This is the one place the stages are composed. It is handed a `Ledger`
(`workflow/ports.py`) and a `WorkflowObserver` (`workflow/observer.py`): it never names the SQL
ledger or a metric.

Before the claim, one lookup finds the event's email recipients on the suppression list (scope
`all`, and the (category, partner) scope of each delivery its recipient may unsubscribe from);
a suppressed delivery is recorded as `blocked` and never reaches the sender. For each delivery the
ledger is claimed first, so a redelivered or republished event never sends twice; the delivery
is settled (sent, failed, blocked, or released for a retry) before the event is marked processed,
and the event is acked only after that (EVENTS.md section 1, step 10).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Protocol

from herald.catalog.plan import Delivery, WebhookDelivery, plan_event
from herald.catalog.recipients import Directory
from herald.catalog.spec import Catalog
from herald.consumers.delivery import InboundMessage
from herald.errors import (
    ConfigurationError,
    HeraldError,
    PermanentError,
    PermanentSendError,
    SmtpAuthenticationError,
    TransientError,
)
from herald.faultpoints import crash_point
from herald.ledger.records import (
    Claim,
    ClaimState,
    HardBounce,
    NewDelivery,
    Provenance,
    Settlement,
    Suppression,
    blocking_suppression,
)
from herald.renderers.email import EmailRenderer, OutgoingEmail
from herald.renderers.webhook import render_webhook
from herald.schemas.decode import decode
from herald.schemas.envelope import Event, IgnoredEvent
from herald.senders.base import Sender
from herald.senders.bounces import is_hard_bounce
from herald.senders.webhook import WebhookSender
from herald.workflow.leases import LeaseKeeper
from herald.workflow.observer import NullObserver, WorkflowObserver
from herald.workflow.ports import Ledger

log = logging.getLogger(__name__)


class ReminderHook(Protocol):
    async def apply(self, event: Event) -> None:
        """Apply an event to the reminder series it arms, updates or ends."""
        ...


class ThresholdHook(Protocol):
    async def deliveries(self, event: Event) -> list[Delivery]:
        """The threshold alerts this event fires, recorded under their keys."""
        ...


class DeliveryBusy(TransientError):
    """Another worker holds this delivery's lease; the event is retried later."""

    retry_reason = "busy"


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
    ledger: Ledger
    observer: WorkflowObserver = field(default_factory=NullObserver)
    webhook_sender: WebhookSender | None = None
    reminders: ReminderHook | None = None
    thresholds: ThresholdHook | None = None
    # Called when the mail server refuses our credentials: the service pauses consuming.
    on_configuration_fault: Callable[[Exception], None] | None = None
    # A claim's lease is renewed every third of it while its worker lives; a crashed worker's
    # deliveries are taken over by the redelivery once the lease lapses.
    lease: timedelta = timedelta(seconds=15)
    retry_window: timedelta = timedelta(hours=24)
    _unknown_types: _OncePerHour = field(default_factory=_OncePerHour)
    _leases: LeaseKeeper = field(init=False)

    def __post_init__(self) -> None:
        self._leases = LeaseKeeper(self.ledger, self.lease)

    async def handle(self, message: InboundMessage) -> str:
        """Process one delivery; returns its accounting outcome (sent, blocked, suppressed,
        no_recipients, failed, ignored or duplicate). Raises for the consumer to settle."""
        started = time.perf_counter()
        with self.observer.stage("validate"):
            decoded = decode(message)  # RejectedMessage goes back to the consumer: dead-letter
        if isinstance(decoded, IgnoredEvent):
            self._ignore(decoded)
            return "ignored"
        event = decoded
        if await self.ledger.is_processed(event.source, event.id):
            self.observer.duplicate(event.domain)
            log.info("duplicate event", extra={**_event_fields(event), "outcome": "duplicate"})
            return "duplicate"
        with self.observer.stage("map"):
            # Step 8 of EVENTS.md section 1: reminder schedules and threshold state.
            if self.reminders is not None:
                await self.reminders.apply(event)
            alerts = [] if self.thresholds is None else await self.thresholds.deliveries(event)
            planned = plan_event(event, self.catalog, self.directory)
        for spec in planned.without_recipients:
            self.observer.notification_settled(event.domain, spec.id, "no_recipients")
        deliveries = planned.deliveries + alerts
        report = await self.deliver_all(
            event,
            deliveries,
            planned.webhooks,
            processed=(event.source, event.id, event.type),
            received_at=message.received_at or None,
        )
        if report.errors:
            raise _retried_for(report.errors)  # only unsettled deliveries are sent again
        self.observer.event_processed(event.domain)
        outcome = report.event_outcome()
        if log.isEnabledFor(logging.INFO):  # building the fields costs more than the filter
            log.info(
                "event processed",
                extra={
                    **_event_fields(event),
                    "outcome": outcome,
                    "deliveries": len(deliveries) + len(planned.webhooks),
                    "duration_ms": _milliseconds_since(started),
                },
            )
        return outcome

    async def deliver(self, event: Event, deliveries: Sequence[Delivery]) -> list[Exception]:
        """Claim, send and settle deliveries (the scheduler's entry point); returns the errors
        of those left for a retry."""
        return (await self.deliver_all(event, deliveries)).errors

    async def deliver_all(
        self,
        event: Event,
        deliveries: Sequence[Delivery],
        webhooks: Sequence[WebhookDelivery] = (),
        processed: tuple[str, str, str] | None = None,
        received_at: float | None = None,
    ) -> DeliveryReport:
        """Claim, send and settle deliveries. `processed` marks the event done in the same
        transaction, when nothing is left; `received_at` (monotonic) is when the broker
        delivered the event, for the delivery-to-acceptance latency."""
        recorded: set[str] = set()  # deliveries already recorded as sent
        # Both go to the ledger at once, so its group commit runs them in one transaction.
        lookup, claimed = await asyncio.gather(
            self._blocked(deliveries),
            self.ledger.claim_many(
                [self._new_delivery(event, delivery) for delivery in deliveries]
                + [self._new_webhook(event, webhook) for webhook in webhooks],
                self.lease,
            ),
            return_exceptions=True,
        )
        if isinstance(claimed, BaseException):
            raise claimed
        claims = claimed
        if isinstance(lookup, BaseException):
            # Nothing may be sent unchecked: release the claims just taken, so the retry of
            # this event finds them free instead of waiting for their leases to run out.
            await _shielded(self.ledger.settle(_released(claims, "suppression lookup failed")))
            raise lookup
        blocked = lookup
        held = [
            key
            for key, claim in claims.items()
            if claim.state in (ClaimState.NEW, ClaimState.RESUMED) and key not in blocked
        ]
        crash_point("after_claim", event.id)
        self._leases.hold(held)
        try:
            attempts = await asyncio.gather(
                *(
                    self._attempt(
                        event,
                        delivery,
                        claims[delivery.key],
                        recorded,
                        received_at,
                        blocked.get(delivery.key),
                    )
                    for delivery in deliveries
                ),
                *(
                    self._attempt_webhook(event, webhook, claims[webhook.key], recorded)
                    for webhook in webhooks
                ),
            )
        except asyncio.CancelledError:
            # Only a shutdown past its grace cancels a delivery's work (a broker failure does
            # not: the consumer runs it in a task of its own). Whether the server took an email
            # is unknown, so release the claims and let the redelivery send again (same
            # Message-ID) rather than wait for the leases to run out.
            leased = _released(claims, "interrupted by shutdown", recorded)
            await _shielded(self.ledger.settle(leased))
            raise
        finally:
            self._leases.release(held)
        settlements = [attempt.settlement for attempt in attempts if attempt.settlement]
        errors = [attempt.error for attempt in attempts if attempt.error is not None]
        # One transaction: every outcome, and the event's duplicate key once nothing is pending.
        await self.ledger.settle(settlements, processed=None if errors else processed)
        logged = log.isEnabledFor(logging.INFO)
        for attempt in attempts:
            if attempt.channel == "webhook":
                self.observer.webhook_settled(attempt.notification, attempt.outcome)
            else:
                self.observer.notification_settled(
                    event.domain, attempt.notification, attempt.outcome
                )
            if not logged:
                continue
            log.info(
                "notification settled",
                extra={
                    **_event_fields(event),
                    "notification": attempt.notification,
                    "channel": attempt.channel,
                    "outcome": attempt.outcome,
                    "duration_ms": attempt.duration_ms,
                },
            )
        return DeliveryReport(errors, [attempt.outcome for attempt in attempts])

    async def close(self) -> None:
        """Stop renewing leases (after the consumers have stopped)."""
        await self._leases.close()

    async def _blocked(self, deliveries: Sequence[Delivery]) -> dict[str, Suppression]:
        """The suppression blocking each delivery it blocks, by key: one lookup for all the
        email recipients. A hard bounce or a manual entry blocks every type; a complaint or an
        unsubscribe of scope `all` every type but those the catalog marks `essential`; an
        unsubscribe from one (category, partner) only the optional deliveries of that scope."""
        if not deliveries:
            return {}
        scopes = {d.key: None if d.unsubscribe is None else d.unsubscribe.scope for d in deliveries}
        found = await self.ledger.in_force(
            sorted({(d.recipient.email, scopes[d.key]) for d in deliveries}, key=str)
        )
        if not found:
            return {}
        return {
            delivery.key: suppression
            for delivery in deliveries
            if (
                suppression := blocking_suppression(
                    found, delivery.recipient.email, scopes[delivery.key], delivery.spec.essential
                )
            )
            is not None
        }

    def _ignore(self, ignored: IgnoredEvent) -> None:
        self.observer.ignored(ignored.domain, "unknown_type")
        if self._unknown_types.first_in_hour(ignored.type):
            log.info(
                "ignoring event type this contract does not define",
                extra={"event_type": ignored.type, "source": ignored.source},
            )

    def _new_delivery(self, event: Event, delivery: Delivery) -> NewDelivery:
        return NewDelivery(
            key=delivery.key,
            notification=delivery.spec.id,
            channel="email",
            event_source=event.source,
            event_id=event.id,
            recipient=delivery.recipient.email,
            message_id=self.renderer.message_id(delivery.key),
        )

    def _new_webhook(self, event: Event, webhook: WebhookDelivery) -> NewDelivery:
        return NewDelivery(
            key=webhook.key,
            notification=webhook.spec.id,
            channel="webhook",
            event_source=event.source,
            event_id=event.id,
            recipient=webhook.target.url,
            message_id=webhook.key,
        )

    def _settled_by_claim(self, notification: str, key: str, claim: Claim) -> _Attempt | None:
        """The attempt's result when the claim alone decides it (already done, busy, expired)."""
        if claim.state in (ClaimState.SENT, ClaimState.FAILED, ClaimState.BLOCKED):
            return _Attempt(notification, "suppressed")
        if claim.state is ClaimState.BUSY:
            busy = DeliveryBusy(f"{notification}: another worker is sending it")
            return _Attempt(notification, "retrying", error=busy)
        if self.ledger.now() - claim.first_attempt_at > self.retry_window:
            expired = Settlement(key, "failed", "transient failures for over 24 hours")
            return _Attempt(notification, "failed", expired)
        return None

    async def _attempt_webhook(
        self, event: Event, webhook: WebhookDelivery, claim: Claim, recorded: set[str]
    ) -> _Attempt:
        notification, key = webhook.spec.id, webhook.key
        settled = self._settled_by_claim(notification, key, claim)
        if settled is not None:
            return replace(settled, channel="webhook")
        try:
            if self.webhook_sender is None:
                raise ConfigurationError("webhooks are configured but no webhook sender is")
            with self.observer.stage("send"):
                result = await self.webhook_sender.send(render_webhook(event, webhook))
        except PermanentError as exc:
            # A 4xx other than 408 and 429 (NOTIFICATIONS.md 6.3): recorded, never retried.
            log.warning(
                "webhook failed permanently",
                extra={**_event_fields(event), "notification": notification, "error": str(exc)},
            )
            return _Attempt(
                notification, "failed", Settlement(key, "failed", str(exc)), channel="webhook"
            )
        except Exception as exc:
            detail = str(exc) if isinstance(exc, HeraldError) else type(exc).__name__
            return _Attempt(
                notification, "retrying", Settlement(key, "retrying", detail), exc, "webhook"
            )
        await _record_even_if_cancelled(
            self.ledger.record_now([Settlement(key, "sent", result.response)])
        )
        recorded.add(key)
        return _Attempt(notification, "sent", channel="webhook")

    async def _attempt(
        self,
        event: Event,
        delivery: Delivery,
        claim: Claim,
        recorded: set[str],
        received_at: float | None = None,
        blocked: Suppression | None = None,
    ) -> _Attempt:
        """Render and send one claimed delivery, and record it as sent right after the server's
        250, shielded from cancellation: a redelivery then skips it. Other outcomes are left to
        the caller's single settle."""
        notification = delivery.spec.id
        key = delivery.key
        settled = self._settled_by_claim(notification, key, claim)
        if settled is not None:
            return settled
        if blocked is not None:  # on the suppression list: recorded, never sent
            return _Attempt(notification, "blocked", Settlement(key, "blocked", blocked.describe()))
        begun = time.perf_counter()
        email: OutgoingEmail | None = None
        try:
            with self.observer.stage("render"):
                email = self.renderer.render(event, delivery, dict(delivery.extras))
            with self.observer.stage("send"):
                result = await self.sender.send(email)
            crash_point("after_250", event.id)
            self._observe_acceptance(event, delivery, received_at)
        except PermanentSendError as exc:
            # The address does not exist: suppressed with the failure, in its transaction.
            bounce = None
            if is_hard_bounce(exc.code, exc.enhanced, exc.stage):
                bounce = HardBounce(delivery.recipient.email, _evidence(exc))
            log.warning(
                "notification failed permanently",
                extra={
                    **_event_fields(event),
                    "notification": notification,
                    "error": str(exc),
                    "hard_bounce": bounce is not None,
                },
            )
            return _Attempt(
                notification,
                "failed",
                Settlement(key, "failed", str(exc), _provenance(email), bounce),
                duration_ms=_milliseconds_since(begun),
            )
        except Exception as exc:
            if isinstance(exc, SmtpAuthenticationError) and self.on_configuration_fault:
                self.on_configuration_fault(exc)
            detail = str(exc) if isinstance(exc, TransientError) else type(exc).__name__
            return _Attempt(
                notification,
                "retrying",
                Settlement(key, "retrying", detail),
                error=exc,
                duration_ms=_milliseconds_since(begun),
            )
        sent = Settlement(key, "sent", result.response[:500], _provenance(email))
        await _record_even_if_cancelled(self.ledger.record_now([sent]))
        crash_point("after_record", event.id)
        recorded.add(key)
        return _Attempt(notification, "sent", duration_ms=_milliseconds_since(begun))

    def _observe_acceptance(
        self, event: Event, delivery: Delivery, received_at: float | None
    ) -> None:
        since_event = None
        if delivery.spec.kind != "schedule":  # a reminder's event is days old by design
            since_event = max(0.0, (self.ledger.now() - event.time).total_seconds())
        since_delivery = None if received_at is None else max(0.0, time.monotonic() - received_at)
        self.observer.accepted(event.domain, delivery.spec.id, since_event, since_delivery)


@dataclass(frozen=True, slots=True)
class _Attempt:
    """What became of one delivery: its metric outcome, what to write, what to raise."""

    notification: str
    outcome: str
    settlement: Settlement | None = None
    error: Exception | None = None
    channel: str = "email"
    duration_ms: float = 0.0


# An event's accounting outcome follows its notifications: the first of these that any of them
# had, else no_recipients (nothing to send).
_EVENT_OUTCOME_PRECEDENCE = ("failed", "sent", "blocked", "suppressed")


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    errors: list[Exception]
    outcomes: list[str]

    def event_outcome(self) -> str:
        for outcome in _EVENT_OUTCOME_PRECEDENCE:
            if outcome in self.outcomes:
                return outcome
        return "no_recipients"


def _retried_for(errors: Sequence[Exception]) -> Exception:
    """The error the event is retried for: the first, unless a receiver asked to be left alone
    for a while (`Retry-After`); then the one that asked longest, so the broker's retry delay
    honours every such request (the retry sends every unsettled delivery again)."""
    chosen, longest = errors[0], None
    for error in errors:
        wait = error.retry_after_seconds if isinstance(error, TransientError) else None
        if wait is not None and (longest is None or wait > longest):
            chosen, longest = error, wait
    return chosen


def _released(
    claims: dict[str, Claim], why: str, recorded: set[str] | frozenset[str] = frozenset()
) -> list[Settlement]:
    """`retrying` for every claim this attempt took and did not record as sent."""
    return [
        Settlement(key, "retrying", why)
        for key, claim in claims.items()
        if claim.state in (ClaimState.NEW, ClaimState.RESUMED) and key not in recorded
    ]


async def _record_even_if_cancelled(record: asyncio.Future[None]) -> None:
    """Finish writing a record although the caller is being cancelled (the email is already
    out: losing the record would make the redelivery send it twice)."""
    try:
        await asyncio.shield(record)
    except asyncio.CancelledError:
        await asyncio.wait([record], timeout=10)
        raise


async def _shielded(work: Coroutine[Any, Any, None]) -> None:
    """Best effort bookkeeping that must not be cut short by a cancellation."""
    try:
        await asyncio.wait_for(asyncio.shield(work), timeout=2)
    except (TimeoutError, TransientError, asyncio.CancelledError):
        log.warning("could not release a delivery claim; its lease will expire")


def _provenance(email: OutgoingEmail | None) -> Provenance | None:
    if email is None:
        return None
    return Provenance(email.template_version, email.locale, email.brand)


def _evidence(error: PermanentSendError) -> str:
    """The server's reply, as the suppression's evidence (kept in the ledger, never logged)."""
    if error.reply is None:
        return str(error)
    return f"{error.code} {error.reply}" if error.code is not None else error.reply


def _milliseconds_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _event_fields(event: Event) -> dict[str, str]:
    return {"event_id": event.id, "source": event.source, "event_type": event.type}
