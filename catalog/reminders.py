"""The rules of NOTIFICATIONS.md 4.2 as pure functions: fire dates, and how a reminder series
changes when an event is applied. No I/O: the ledger stores rows, the scheduler sends.

A row is one (notification, entity id, cycle key, offset) with a status:
`pending` (will fire on `fire_date`), `firing` (a scheduler holds it), `sent`, `cancelled` or
`missed`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from herald.catalog.spec import NotificationSpec, ReminderSeries


def path_value(data: Any, path: str) -> Any:
    value = data
    for part in path.split("."):
        value = getattr(value, part)
    return value


def cycle_text(value: Any) -> str:
    """A cycle key as stored: timestamps in UTC ISO form, anything else as text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


def fire_date(anchor: datetime, offset: int) -> date:
    """Rule 1: the UTC calendar date of the anchor minus `offset` days."""
    return anchor.astimezone(UTC).date() - timedelta(days=offset)


def entity_ids(series: ReminderSeries, event_type: str, data: Any) -> list[str]:
    """The entities of `series` an event is about. `orders.order.canceled` ends the plans its
    new license plan lines would have created."""
    if event_type == "orders.order.canceled":
        return [
            line.plan_id
            for line in data.order.lines
            if line.kind == "license_plan" and line.action == "new" and line.plan_id
        ]
    return [str(path_value(data, series.entity))]


@dataclass(frozen=True, slots=True)
class Row:
    notification: str
    entity_id: str
    cycle_key: str
    offset: int
    fire_date: date
    status: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What applying an event does to one notification's rows for one entity."""

    upserts: list[Row]  # rows to insert or update (status and fire date)
    newly_missed: int  # rows that became `missed` now (counted once)
    cancelled: int  # pending rows cancelled now


def reconcile(
    spec: NotificationSpec, entity_id: str, data: Any, existing: Iterable[Row], today: date
) -> Plan:
    """Rules 3 to 6 for an arming or updating event whose `data` is now the entity's state."""
    series = spec.series
    assert series is not None
    cycle = cycle_text(path_value(data, series.cycle_key))
    anchor: datetime = path_value(data, series.anchor)
    armed = series.armed(data)
    existing = list(existing)
    current = {row.offset: row for row in existing if row.cycle_key == cycle}
    upserts: list[Row] = []
    missed = cancelled = 0
    # Rule 5: a new cycle cancels whatever is pending in the old ones.
    for old in existing:
        if old.cycle_key != cycle and old.status == "pending":
            upserts.append(_with(old, status="cancelled"))
            cancelled += 1
    for offset in series.offsets:
        row = current.get(offset)
        if row is not None and row.status in ("sent", "firing"):
            continue  # rule 4: never again in this cycle (or: a scheduler is sending it now)
        due = fire_date(anchor, offset)
        if not armed:  # rule 6: disarm
            if row is not None and row.status == "pending":
                upserts.append(_with(row, status="cancelled", fire_date=due))
                cancelled += 1
            continue
        if due >= today:  # rules 3, 4 and 6: pending (again) on the current fire date
            if row is None or row.status != "pending" or row.fire_date != due:
                upserts.append(Row(spec.id, entity_id, cycle, offset, due, "pending"))
        elif row is None or row.status == "pending":  # rule 2: its day has passed
            upserts.append(Row(spec.id, entity_id, cycle, offset, due, "missed"))
            missed += 1
    return Plan(upserts=upserts, newly_missed=missed, cancelled=cancelled)


def end(existing: Iterable[Row]) -> Plan:
    """Rule 7: an ending event cancels every pending reminder of the entity."""
    cancelled = [_with(row, status="cancelled") for row in existing if row.status == "pending"]
    return Plan(upserts=cancelled, newly_missed=0, cancelled=len(cancelled))


def still_due(spec: NotificationSpec, row: Row, data: Any, ended: bool, today: date) -> bool:
    """Rule 9: at fire time, send only if the series is armed, the entity has not ended, the row
    belongs to the current cycle and today is its fire date from the current anchor."""
    series = spec.series
    assert series is not None
    if ended or not series.armed(data):
        return False
    if cycle_text(path_value(data, series.cycle_key)) != row.cycle_key:
        return False
    return fire_date(path_value(data, series.anchor), row.offset) == today == row.fire_date


def _with(row: Row, status: str, fire_date: date | None = None) -> Row:
    return replace(row, status=status, fire_date=row.fire_date if fire_date is None else fire_date)
