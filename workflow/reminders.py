"""Scheduled reminders (NOTIFICATIONS.md 4): apply lifecycle events to reminder series, and the
scheduler pass that sends what is due through the same render and send stages as events.

The rules themselves are pure functions in `catalog.reminders`; rows live in the ledger
(`ledger.schedules`). This module connects them, with an injectable clock.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Any

from herald.catalog.plan import Delivery, instance_key
from herald.catalog.recipients import Directory, resolve
from herald.catalog.reminders import Plan, Row, end, entity_ids, reconcile, still_due
from herald.catalog.spec import Catalog, NotificationSpec
from herald.clock import Clock, utc_now
from herald.ledger.schedules import DueReminder, ScheduleStore, StoredEvent
from herald.schemas.base import ContractModel
from herald.schemas.envelope import Event
from herald.workflow.observer import NullObserver, WorkflowObserver

log = logging.getLogger(__name__)

Deliver = Callable[[Event, list[Delivery]], Coroutine[Any, Any, list[Exception]]]
REDACTED_URL = "https://redacted.invalid/"
FIRING_LEASE = timedelta(minutes=3)  # longer than a send's budget (2 minutes)
RETRY_DELAY = timedelta(minutes=1)


def _redact(value: Any) -> Any:
    """EVENTS.md 4.4: secret links are kept only until their email is sent, never in state."""
    if isinstance(value, dict):
        return {
            key: REDACTED_URL if key == "action_url" else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


@dataclass
class ReminderScheduler:
    catalog: Catalog
    store: ScheduleStore
    directory: Directory
    schemas: dict[str, type[ContractModel]]
    observer: WorkflowObserver = field(default_factory=NullObserver)
    send_time: time = time(8, 0)
    clock: Clock = utc_now

    def __post_init__(self) -> None:
        # event type -> the scheduled specs it arms, updates or ends
        self._by_event: dict[str, list[NotificationSpec]] = defaultdict(list)
        for spec in self.catalog:
            if spec.series is None:
                continue
            for event_type in {*spec.series.arming_events, *spec.series.ending_events}:
                self._by_event[event_type].append(spec)

    async def apply(self, event: Event) -> None:
        """Rules 3 to 8: store the entity's state and re-plan its reminders."""
        specs = self._by_event.get(event.type)
        if not specs:
            return
        data: Any = event.data
        today = self.clock().date()
        stored = StoredEvent(
            type=event.type,
            source=event.source,
            id=event.id,
            time=event.time,
            data=_redact(data.model_dump(mode="json", exclude_none=True)),
        )
        by_entity: dict[tuple[str, str], list[NotificationSpec]] = defaultdict(list)
        for spec in specs:
            assert spec.series is not None
            for entity_id in entity_ids(spec.series, event.type, data):
                by_entity[(spec.series.entity, entity_id)].append(spec)
        for (entity, entity_id), entity_specs in by_entity.items():
            ends = any(
                event.type in spec.series.ending_events for spec in entity_specs if spec.series
            )

            def planner(
                rows: list[Row],
                specs: list[NotificationSpec] = entity_specs,
                entity_id: str = entity_id,
                ends: bool = ends,
            ) -> Plan:
                if ends:
                    return end(rows)
                plans = [
                    reconcile(
                        spec, entity_id, data, [r for r in rows if r.notification == spec.id], today
                    )
                    for spec in specs
                ]
                return Plan(
                    upserts=[row for plan in plans for row in plan.upserts],
                    newly_missed=sum(plan.newly_missed for plan in plans),
                    cancelled=sum(plan.cancelled for plan in plans),
                )

            plan = await self.store.apply(entity, entity_id, stored, ends, planner)
            if plan is None:
                log.info(
                    "older event does not change the schedule",
                    extra={"event_id": event.id, "event_type": event.type, "entity": entity},
                )
                continue
            for row in plan.upserts:
                if row.status in ("missed", "cancelled"):
                    self.observer.reminder(row.notification, row.status)

    async def run_pass(self, deliver: Deliver) -> None:
        """One scheduler pass: overdue reminders become missed (rule 2); due ones are checked
        again (rule 9) and sent; a reminder whose emails could not all be sent is retried."""
        now = self.clock()
        today = now.date()
        for notification in await self.store.mark_overdue_missed(today):
            self.observer.reminder(notification, "missed")
        if now.time() >= self.send_time:
            while True:
                due = await self.store.claim_due(today, FIRING_LEASE)
                if not due:
                    break
                for reminder in due:
                    await self._fire(reminder, deliver, today)
        self.observer.pending_reminders(await self.store.pending_count())

    async def _fire(self, reminder: DueReminder, deliver: Deliver, today: Any) -> None:
        spec = self.catalog[reminder.row.notification]
        stored = reminder.event
        if reminder.ended:
            await self.store.finish(reminder.id, "cancelled")
            self.observer.reminder(spec.id, "stale")
            return
        data = self.schemas[stored.type].model_validate(stored.data)
        if not still_due(spec, reminder.row, data, reminder.ended, today):
            await self.store.finish(reminder.id, "cancelled")
            self.observer.reminder(spec.id, "stale")
            return
        event = Event(
            id=stored.id, source=stored.source, type=stored.type, time=stored.time, data=data
        )
        row = reminder.row
        deliveries = [
            Delivery(
                spec=spec,
                recipient=recipient,
                key=instance_key(
                    spec.id, row.entity_id, row.cycle_key, str(row.offset), recipient.address_key
                ),
                extras={"days": row.offset},
            )
            for recipient in resolve(spec.recipients, data, self.directory)
        ]
        if not deliveries:
            self.observer.notification_settled(event.domain, spec.id, "no_recipients")
        errors = await deliver(event, deliveries)
        if errors:
            await self.store.retry_later(reminder.id, RETRY_DELAY)
            log.warning(
                "reminder not fully sent, will retry",
                extra={"notification": spec.id, "error": type(errors[0]).__name__},
            )
            return
        await self.store.finish(reminder.id, "sent")
        self.observer.reminder(spec.id, "sent")
