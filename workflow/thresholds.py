"""Threshold alerts (NOTIFICATIONS.md 5): evaluate each Teams usage report, record which
threshold fired for its (subscription, billing period) under a unique key, and return the
deliveries to send. A redelivered report that fired an alert sends it again (the ledger drops
what was already sent); another report never fires it a second time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from herald.catalog.plan import Delivery, instance_key
from herald.catalog.recipients import Directory, resolve
from herald.catalog.reminders import cycle_text
from herald.catalog.spec import Catalog
from herald.catalog.thresholds import THRESHOLDS, evaluate
from herald.clock import Clock, utc_now
from herald.ledger.schedules import ScheduleStore
from herald.schemas.envelope import Event
from herald.workflow.observer import NullObserver, WorkflowObserver


@dataclass
class ThresholdAlerts:
    catalog: Catalog
    store: ScheduleStore
    directory: Directory
    observer: WorkflowObserver = field(default_factory=NullObserver)
    clock: Clock = utc_now

    def __post_init__(self) -> None:
        # Every event passes here: the catalog is scanned once, not per event.
        self._triggers = frozenset(
            spec.trigger for spec in self.catalog if spec.kind == "threshold"
        )

    async def deliveries(self, event: Event) -> list[Delivery]:
        if event.type not in self._triggers:
            return []
        data: Any = event.data
        subscription_id: str = data.subscription_id
        period_start = cycle_text(data.billing_period.starts_at)
        this_event = f"{event.source} {event.id}"
        fired = await self.store.thresholds_fired(subscription_id, period_start)
        by_others = frozenset(name for name, holder in fired.items() if holder != this_event)
        decision = evaluate(data, self.clock(), by_others)
        if decision.stale:
            for notification in THRESHOLDS:
                self.observer.threshold_alert(notification, "stale")
            return []
        outcomes = [(name, "sent") for name in decision.fire] + [
            (name, "suppressed") for name in decision.suppress
        ]
        holders = fired
        if outcomes:
            holders = await self.store.record_thresholds(
                subscription_id, period_start, event.source, event.id, outcomes
            )
        for name, outcome in outcomes:
            if holders.get(name) == this_event and name not in fired:
                self.observer.threshold_alert(name, outcome)
        deliveries: list[Delivery] = []
        for name in decision.fire:
            if holders.get(name) != this_event:
                continue  # a concurrent report of the same period fired it first
            spec = self.catalog[name]
            deliveries.extend(
                Delivery(
                    spec=spec,
                    recipient=recipient,
                    key=instance_key(name, subscription_id, period_start, recipient.address_key),
                    extras={"usage_percent": decision.usage_percent},
                )
                for recipient in resolve(spec.recipients, data, self.directory)
            )
        return deliveries
