"""Ledger storage for reminders and threshold alerts (NOTIFICATIONS.md 4 and 5).

Entity states, reminder rows under their unique instance key, and the (notification,
subscription, billing period) keys of threshold alerts. Several replicas may share one
PostgreSQL ledger: every transition is a conditional UPDATE or a unique INSERT, so two workers
can never both claim one reminder or both fire one threshold.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from herald.catalog.reminders import Plan, Row
from herald.ledger.store import SqlLedger, as_utc
from herald.ledger.tables import entity_states, reminders, threshold_alerts


@dataclass(frozen=True, slots=True)
class StoredEvent:
    type: str
    source: str
    id: str
    time: datetime
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DueReminder:
    id: int
    row: Row
    entity: str
    event: StoredEvent
    ended: bool


@dataclass(frozen=True, slots=True)
class ReminderListing:
    notification: str
    entity: str
    entity_id: str
    cycle_key: str
    offset: int
    fire_date: date
    status: str
    updated_at: datetime


Planner = Callable[[list[Row]], Plan]


class ScheduleStore:
    def __init__(self, ledger: SqlLedger) -> None:
        self._ledger = ledger
        self._dialect = postgresql if ledger.dialect == "postgresql" else sqlite

    # Entity states and reminder rows ------------------------------------------------------

    async def apply(
        self, entity: str, entity_id: str, event: StoredEvent, ends: bool, planner: Planner
    ) -> Plan | None:
        """Store `event` as the entity's state and write what `planner` decides for its rows,
        in one transaction; None when an event with a later `time` was applied before
        (rule 8)."""
        now = self._ledger.now()

        async def work(connection: AsyncConnection) -> Plan | None:
            await connection.execute(
                self._dialect.insert(entity_states)
                .values(
                    entity=entity,
                    entity_id=entity_id,
                    event_type=event.type,
                    event_source=event.source,
                    event_id=event.id,
                    event_time=event.time,
                    data=json.dumps(event.data),
                    ended=ends,
                )
                .on_conflict_do_nothing()
            )
            state_query = select(entity_states.c.event_time, entity_states.c.event_id).where(
                entity_states.c.entity == entity, entity_states.c.entity_id == entity_id
            )
            if self._ledger.dialect == "postgresql":
                state_query = state_query.with_for_update()  # one applier per entity at a time
            state = (await connection.execute(state_query)).one()
            if as_utc(state.event_time) > event.time:
                return None
            await connection.execute(
                update(entity_states)
                .where(entity_states.c.entity == entity, entity_states.c.entity_id == entity_id)
                .values(
                    event_type=event.type,
                    event_source=event.source,
                    event_id=event.id,
                    event_time=event.time,
                    data=json.dumps(event.data),
                    ended=ends,
                )
            )
            existing = await connection.execute(
                select(reminders).where(
                    reminders.c.entity == entity, reminders.c.entity_id == entity_id
                )
            )
            plan = planner([_row(row) for row in existing])
            for row in plan.upserts:
                insert = self._dialect.insert(reminders).values(
                    notification=row.notification,
                    entity=entity,
                    entity_id=row.entity_id,
                    cycle_key=row.cycle_key,
                    offset_days=row.offset,
                    fire_date=row.fire_date,
                    status=row.status,
                    updated_at=now,
                )
                await connection.execute(
                    insert.on_conflict_do_update(
                        index_elements=["notification", "entity_id", "cycle_key", "offset_days"],
                        set_={
                            "fire_date": insert.excluded.fire_date,
                            "status": insert.excluded.status,
                            "updated_at": insert.excluded.updated_at,
                            "lease_until": None,
                        },
                    )
                )
            return plan

        result: Plan | None = await self._ledger.run(work)
        return result

    async def mark_overdue_missed(self, today: date) -> list[str]:
        """Rule 2: a pending reminder whose fire date has passed is never sent."""

        async def work(connection: AsyncConnection) -> list[str]:
            result = await connection.execute(
                update(reminders)
                .where(reminders.c.status == "pending", reminders.c.fire_date < today)
                .values(status="missed", updated_at=self._ledger.now())
                .returning(reminders.c.notification)
            )
            return list(result.scalars())

        missed: list[str] = await self._ledger.run(work)
        return missed

    async def claim_due(self, today: date, lease: timedelta, limit: int = 100) -> list[DueReminder]:
        """Claim reminders due today (or whose firing worker died), with their entity's state.
        The conditional UPDATE is the lock: of several replicas, exactly one gets each row."""
        now = self._ledger.now()
        due = or_(
            and_(reminders.c.status == "pending", reminders.c.fire_date == today),
            and_(reminders.c.status == "firing", reminders.c.lease_until < now),
        )

        async def work(connection: AsyncConnection) -> list[DueReminder]:
            candidates = select(reminders.c.id).where(due).order_by(reminders.c.id).limit(limit)
            if self._ledger.dialect == "postgresql":
                candidates = candidates.with_for_update(skip_locked=True)
            ids = list((await connection.execute(candidates)).scalars())
            if not ids:
                return []
            claimed = await connection.execute(
                update(reminders)
                .where(reminders.c.id.in_(ids), due)
                .values(status="firing", lease_until=now + lease, updated_at=now)
                .returning(reminders.c.id)
            )
            claimed_ids = list(claimed.scalars())
            if not claimed_ids:
                return []
            rows = await connection.execute(
                select(reminders, entity_states)
                .join(
                    entity_states,
                    and_(
                        entity_states.c.entity == reminders.c.entity,
                        entity_states.c.entity_id == reminders.c.entity_id,
                    ),
                )
                .where(reminders.c.id.in_(claimed_ids))
                .order_by(reminders.c.id)
            )
            return [
                DueReminder(
                    id=row.id,
                    row=_row(row),
                    entity=row.entity,
                    event=StoredEvent(
                        type=row.event_type,
                        source=row.event_source,
                        id=row.event_id,
                        time=as_utc(row.event_time),
                        data=json.loads(row.data),
                    ),
                    ended=bool(row.ended),
                )
                for row in rows
            ]

        claimed_reminders: list[DueReminder] = await self._ledger.run(work)
        return claimed_reminders

    async def finish(self, reminder_id: int, status: str) -> None:
        """`sent` or `cancelled`, only from `firing` (a re-armed row is left alone)."""
        await self._set(reminder_id, {"status": status, "lease_until": None})

    async def retry_later(self, reminder_id: int, delay: timedelta) -> None:
        """Keep the reminder `firing` and let any scheduler retry it after `delay`."""
        await self._set(reminder_id, {"lease_until": self._ledger.now() + delay})

    async def _set(self, reminder_id: int, values: dict[str, Any]) -> None:
        async def work(connection: AsyncConnection) -> None:
            await connection.execute(
                update(reminders)
                .where(reminders.c.id == reminder_id, reminders.c.status == "firing")
                .values(updated_at=self._ledger.now(), **values)
            )

        await self._ledger.run(work)

    async def pending_count(self) -> int:
        async def work(connection: AsyncConnection) -> int:
            result = await connection.execute(
                select(func.count()).select_from(reminders).where(reminders.c.status == "pending")
            )
            return int(result.scalar_one())

        count: int = await self._ledger.run(work)
        return count

    async def listing(self, entity_id: str | None = None) -> list[ReminderListing]:
        async def work(connection: AsyncConnection) -> list[ReminderListing]:
            query = select(reminders).order_by(
                reminders.c.entity_id, reminders.c.notification, reminders.c.fire_date
            )
            if entity_id is not None:
                query = query.where(reminders.c.entity_id == entity_id)
            return [
                ReminderListing(
                    notification=row.notification,
                    entity=row.entity,
                    entity_id=row.entity_id,
                    cycle_key=row.cycle_key,
                    offset=row.offset_days,
                    fire_date=row.fire_date,
                    status=row.status,
                    updated_at=as_utc(row.updated_at),
                )
                for row in await connection.execute(query)
            ]

        listing: list[ReminderListing] = await self._ledger.run(work)
        return listing

    # Threshold alerts ----------------------------------------------------------------------

    async def thresholds_fired(self, subscription_id: str, period_start: str) -> dict[str, str]:
        """notification -> `source id` of the event that fired it, for K."""

        async def work(connection: AsyncConnection) -> dict[str, str]:
            return await _threshold_holders(connection, subscription_id, period_start)

        fired: dict[str, str] = await self._ledger.run(work)
        return fired

    async def record_thresholds(
        self,
        subscription_id: str,
        period_start: str,
        source: str,
        event_id: str,
        outcomes: Sequence[tuple[str, str]],
    ) -> dict[str, str]:
        """Record (notification, outcome) for K under the unique key; return notification ->
        `source id` of whichever event holds each key afterwards (ours, or an earlier one)."""
        now = self._ledger.now()

        async def work(connection: AsyncConnection) -> dict[str, str]:
            for notification, outcome in outcomes:
                await connection.execute(
                    self._dialect.insert(threshold_alerts)
                    .values(
                        notification=notification,
                        subscription_id=subscription_id,
                        period_start=period_start,
                        event_source=source,
                        event_id=event_id,
                        outcome=outcome,
                        recorded_at=now,
                    )
                    .on_conflict_do_nothing()
                )
            return await _threshold_holders(connection, subscription_id, period_start)

        holders: dict[str, str] = await self._ledger.run(work)
        return holders


async def _threshold_holders(
    connection: AsyncConnection, subscription_id: str, period_start: str
) -> dict[str, str]:
    rows = await connection.execute(
        select(
            threshold_alerts.c.notification,
            threshold_alerts.c.event_source,
            threshold_alerts.c.event_id,
        ).where(
            threshold_alerts.c.subscription_id == subscription_id,
            threshold_alerts.c.period_start == period_start,
        )
    )
    return {row.notification: f"{row.event_source} {row.event_id}" for row in rows}


def _row(row: Any) -> Row:
    return Row(
        notification=row.notification,
        entity_id=row.entity_id,
        cycle_key=row.cycle_key,
        offset=row.offset_days,
        fire_date=row.fire_date,
        status=row.status,
    )
