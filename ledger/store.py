"""Ledger operations: duplicate keys of processed events, and delivery claims with leases.

A delivery row moves `sending` (a worker holds a lease while it sends) -> `sent` or `failed`;
a transient failure releases it as `retrying`. A worker whose lease expired (it crashed) is
superseded by the next redelivery, which resends with the same Message-ID: at least once for
the crash window, exactly once otherwise.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, inspect, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.types import String

from herald.clock import Clock, utc_now
from herald.errors import LedgerUnreachable
from herald.ledger.batcher import NORMAL, URGENT, GroupCommit, Observer, SyncBatches
from herald.ledger.engine import create_engine, ledger_where, sqlite_file, sqlite_sync_engine
from herald.ledger.feedback import FeedbackOutcome, FeedbackReport, record_feedback
from herald.ledger.health import LedgerHealth, LedgerUnavailable
from herald.ledger.records import (
    Claim,
    ClaimState,
    DeliveryRecord,
    NewDelivery,
    Provenance,
    Settlement,
    Suppression,
)
from herald.ledger.suppressions import (
    SuppressionList,
    insert_suppression,
    lookup_blocking,
    lookup_in_force,
)

__all__ = ["LedgerUnavailable", "SqlLedger"]
from herald.ledger.tables import deliveries, metadata, processed_events

# The advisory lock that serialises schema creation across replicas (any constant bigint).
_SCHEMA_LOCK_KEY = 0x4845_5241_4C44  # "HERALD"
_SETTLED_STATES = {
    "sent": ClaimState.SENT,
    "failed": ClaimState.FAILED,
    "blocked": ClaimState.BLOCKED,
    # Sent, then reported (issue 18): delivered all the same, never sent again.
    "bounced": ClaimState.SENT,
    "complained": ClaimState.SENT,
}
_FINAL = ("sent", "failed", "blocked")


def _unavailable(error: Exception) -> Exception:
    """Database errors become `LedgerUnavailable`; anything else is a bug and stays itself."""
    if isinstance(error, SQLAlchemyError | OSError):
        unavailable = LedgerUnavailable(f"ledger: {type(error).__name__}")
        unavailable.__cause__ = error
        return unavailable
    return error


def _open_failure(error: Exception) -> str:
    """The database's own words for a failed open (its first line; no statement, no URL)."""
    cause: BaseException = getattr(error, "orig", None) or error
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    text = str(cause).strip().splitlines()
    return text[0][:200] if text else type(cause).__name__


def _timed_out() -> LedgerUnavailable:
    error = LedgerUnavailable("ledger: probe timed out")
    error.__cause__ = TimeoutError()
    return error


_PROBE = text("SELECT 1")
_IS_PROCESSED = select(processed_events.c.event_id).where(
    processed_events.c.source == bindparam("checked_source"),
    processed_events.c.event_id == bindparam("checked_id"),
)
# Built once: the hot path then skips statement construction and cache-key generation, and
# several outcomes go in one executemany.
_SETTLE = (
    update(deliveries)
    .where(deliveries.c.key == bindparam("settled_key"))
    .values(
        status=bindparam("settled_status"),
        lease_until=None,
        detail=bindparam("settled_detail"),
        completed_at=bindparam("settled_at"),
        template_version=func.coalesce(
            bindparam("settled_template", type_=String), deliveries.c.template_version
        ),
        locale=func.coalesce(bindparam("settled_locale", type_=String), deliveries.c.locale),
        brand=func.coalesce(bindparam("settled_brand", type_=String), deliveries.c.brand),
    )
)


def _provenance_row(provenance: Provenance | None) -> dict[str, str | None]:
    if provenance is None:
        return {"settled_template": None, "settled_locale": None, "settled_brand": None}
    return {
        "settled_template": provenance.template_version,
        "settled_locale": provenance.locale,
        "settled_brand": provenance.brand,
    }


def _add_missing_columns(connection: Connection) -> None:
    """`ALTER TABLE ... ADD COLUMN` for each nullable column a table of an older release lacks."""
    inspector = inspect(connection)
    quote = connection.dialect.identifier_preparer.quote
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise RuntimeError(f"ledger: cannot add NOT NULL column {table.name}.{column.name}")
            column_type = column.type.compile(dialect=connection.dialect)
            table_name, column_name = quote(table.name), quote(column.name)
            connection.execute(
                text(f"ALTER TABLE {table_name} ADD COLUMN {column_name} {column_type}")
            )


def delivery_record(row: Any) -> DeliveryRecord:
    """A row of `deliveries` as the record support reads."""
    return DeliveryRecord(
        notification=row.notification,
        channel=row.channel,
        recipient=row.recipient,
        event_source=row.event_source,
        event_id=row.event_id,
        message_id=row.message_id,
        status=row.status,
        attempts=row.attempts,
        first_attempt_at=as_utc(row.first_attempt_at),
        last_attempt_at=as_utc(row.last_attempt_at),
        completed_at=None if row.completed_at is None else as_utc(row.completed_at),
        detail=row.detail,
        template_version=row.template_version,
        locale=row.locale,
        brand=row.brand,
    )


def as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class SqlLedger:
    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock = utc_now,
        observe: Observer | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._dialect = engine.dialect.name
        # SQLite has one writer; PostgreSQL takes a few batches at once.
        runners = 1 if self._dialect == "sqlite" else 4
        url = engine.url.render_as_string(hide_password=False)
        sync_engine = sqlite_sync_engine(url)
        self.health = LedgerHealth(sqlite_file(url))
        self._batches = GroupCommit(
            engine,
            runners,
            translate=_unavailable,
            sync=None if sync_engine is None else SyncBatches(sync_engine, self.health.guard),
            guard=self.health.refuse_if_failed,
        )
        self._batches.outcome = self.health.outcome
        self._health_watch: asyncio.Task[None] | None = None
        self.observe = observe
        self._mark_processed = self._insert_ignoring_conflict(processed_events)
        self._claim_new = self._insert_ignoring_conflict(deliveries).returning(deliveries.c.key)

    @property
    def observe(self) -> Observer | None:
        """Called with each unit of work's duration (queueing included) and error (metrics)."""
        return self._batches.observe

    @observe.setter
    def observe(self, observer: Observer | None) -> None:
        self._batches.observe = observer

    @classmethod
    async def open(cls, url: str, clock: Clock = utc_now) -> SqlLedger:
        """Connect and create or upgrade the schema; LedgerUnreachable names what failed."""
        ledger = cls(create_engine(url), clock)
        try:
            await ledger.create_schema()
            ledger.health.remember_file()
        except (SQLAlchemyError, OSError) as exc:
            await ledger.close()
            raise LedgerUnreachable(
                f"cannot open the ledger: {_open_failure(exc)}", ledger_where(url)
            ) from exc
        return ledger

    async def create_schema(self) -> None:
        """Create missing tables, and the nullable columns and indexes added to existing tables
        since (create_all creates them only with their table): the schema only ever grows."""
        async with self._engine.begin() as connection:
            if self._dialect == "postgresql":
                # Replicas starting together on a new database would race on CREATE TABLE
                # (a unique violation in pg_type): one creates, the others wait and see it.
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY}
                )
            await connection.run_sync(metadata.create_all)
            await connection.run_sync(_add_missing_columns)
            for table in metadata.sorted_tables:
                for index in table.indexes:
                    await connection.run_sync(index.create, checkfirst=True)

    async def close(self) -> None:
        if self._health_watch is not None:
            self._health_watch.cancel()
            await asyncio.gather(self._health_watch, return_exceptions=True)
            self._health_watch = None
        await self._batches.close()
        await self._engine.dispose()

    # Health (ledger/health.py) -----------------------------------------------------------------

    async def probe(self) -> None:
        """A `SELECT 1` through the same path as every transaction (its guard included)."""

        async def work(connection: AsyncConnection) -> None:
            await connection.execute(_PROBE)

        await self._run(work)

    def start_health_watch(self, interval: float = 1.0, timeout: float = 5.0) -> None:
        """Check the ledger every `interval` seconds: the SQLite file's identity, and a probe
        when no unit of work succeeded since the last check (a busy ledger proves itself)."""
        if self._health_watch is None:
            self._health_watch = asyncio.create_task(
                self._watch_health(interval, probe_seconds=timeout), name="herald-ledger-health"
            )

    async def _watch_health(self, interval: float, probe_seconds: float) -> None:
        health = self.health
        while True:
            await asyncio.sleep(interval)
            try:
                health.guard()
                if not health.ok or time.monotonic() - health.last_success > interval:
                    async with asyncio.timeout(probe_seconds):
                        await self.probe()
            except LedgerUnavailable:
                pass  # recorded by the guard or the unit's outcome
            except TimeoutError:
                health.outcome(_timed_out())
            except Exception as exc:  # a bug must not end the watch
                health.outcome(_unavailable(exc))
            health.checked()

    def _insert_ignoring_conflict(self, table: Any) -> Any:
        dialect_module = postgresql if self._dialect == "postgresql" else sqlite
        return dialect_module.insert(table).on_conflict_do_nothing()

    @property
    def dialect(self) -> str:
        return self._dialect

    def now(self) -> datetime:
        return self._clock()

    async def run(self, work: Callable[[AsyncConnection], Any]) -> Any:
        """Run `work` in one transaction; database errors become `LedgerUnavailable`."""
        return await self._run(work)

    async def _run(self, work: Callable[[AsyncConnection], Any], priority: int = NORMAL) -> Any:
        """Run `work` in a transaction, usually together with other units (group commit)."""
        return await self._batches.run(work, priority)

    # Processed events (EVENTS.md 3.2) ---------------------------------------------------------

    async def is_processed(self, source: str, event_id: str) -> bool:
        parameters = {"checked_source": source, "checked_id": event_id}

        async def work(connection: AsyncConnection) -> bool:
            row = await connection.execute(_IS_PROCESSED, parameters)
            return row.first() is not None

        return bool(await self._run(work))

    async def purge_processed(self, older_than: timedelta) -> int:
        cutoff = self._clock() - older_than

        async def work(connection: AsyncConnection) -> int:
            result = await connection.execute(
                delete(processed_events).where(processed_events.c.processed_at < cutoff)
            )
            return int(result.rowcount or 0)

        return int(await self._run(work))

    # Deliveries (NOTIFICATIONS.md 6.1) ---------------------------------------------------------

    async def claim_many(self, batch: Sequence[NewDelivery], lease: timedelta) -> dict[str, Claim]:
        """Claim every delivery of one event in one transaction (three statements, whatever
        the batch size): new rows are inserted, released or expired ones are taken over, and
        the rest report their state."""
        if not batch:
            return {}
        now = self._clock()
        lease_until = now + lease
        table = deliveries
        keys = [delivery.key for delivery in batch]
        rows = [
            {
                "key": delivery.key,
                "notification": delivery.notification,
                "channel": delivery.channel,
                "event_source": delivery.event_source,
                "event_id": delivery.event_id,
                "recipient": delivery.recipient,
                "message_id": delivery.message_id,
                "status": "sending",
                "attempts": 1,
                "lease_until": lease_until,
                "first_attempt_at": now,
                "last_attempt_at": now,
            }
            for delivery in batch
        ]

        async def work(connection: AsyncConnection) -> dict[str, Claim]:
            # executemany ("insertmanyvalues"): compiled once and cached, unlike a multi-row
            # VALUES clause built per call.
            inserted = await connection.execute(self._claim_new, rows)
            claims = {key: Claim(ClaimState.NEW, 1, now) for key in inserted.scalars()}
            existing = [key for key in keys if key not in claims]
            if not existing:
                return claims
            taken = await connection.execute(
                update(table)
                .where(
                    table.c.key.in_(existing),
                    or_(
                        table.c.status == "retrying",
                        and_(table.c.status == "sending", table.c.lease_until < now),
                    ),
                )
                .values(
                    status="sending",
                    attempts=table.c.attempts + 1,
                    lease_until=lease_until,
                    last_attempt_at=now,
                )
                .returning(table.c.key)
            )
            resumed = set(taken.scalars())
            states = await connection.execute(
                select(
                    table.c.key, table.c.status, table.c.attempts, table.c.first_attempt_at
                ).where(table.c.key.in_(existing))
            )
            for row in states:
                if row.key in resumed:
                    state = ClaimState.RESUMED
                else:
                    state = _SETTLED_STATES.get(row.status, ClaimState.BUSY)
                claims[row.key] = Claim(state, row.attempts, as_utc(row.first_attempt_at))
            return claims

        claims: dict[str, Claim] = await self._run(work)
        return claims

    async def settle(
        self,
        outcomes: Sequence[Settlement],
        processed: tuple[str, str, str] | None = None,
    ) -> None:
        """Record delivery outcomes and, when given (`source`, `id`, `type`), mark the event
        processed, in one transaction."""
        await self._run(self._settle_work(outcomes, processed))

    def record_now(self, outcomes: Sequence[Settlement]) -> asyncio.Future[None]:
        """Queue urgent outcomes (an email the server accepted) at once, as a future that the
        caller's cancellation does not stop when shielded: no task per record."""
        future: asyncio.Future[None] = self._batches.submit(
            self._settle_work(outcomes, None), URGENT
        )
        return future

    def _settle_work(
        self, outcomes: Sequence[Settlement], processed: tuple[str, str, str] | None
    ) -> Callable[[AsyncConnection], Any]:
        now = self._clock()
        rows = [
            {
                "settled_key": outcome.key,
                "settled_status": outcome.status,
                "settled_detail": outcome.detail,
                "settled_at": now if outcome.status in _FINAL else None,
                **_provenance_row(outcome.provenance),
            }
            for outcome in outcomes
        ]
        bounces = [outcome.hard_bounce for outcome in outcomes if outcome.hard_bounce is not None]

        async def work(connection: AsyncConnection) -> None:
            if rows:
                await connection.execute(_SETTLE, rows)
            for bounce in bounces:  # the suppression goes with the failure, all or nothing
                await insert_suppression(
                    connection,
                    self._dialect,
                    now,
                    bounce.address,
                    "hard_bounce",
                    "smtp",
                    "herald",
                    evidence=bounce.evidence,
                )
            if processed is not None:
                source, event_id, event_type = processed
                await connection.execute(
                    self._mark_processed,
                    {
                        "source": source,
                        "event_id": event_id,
                        "event_type": event_type,
                        "processed_at": now,
                    },
                )

        return work

    async def renew(self, keys: Sequence[str], lease: timedelta) -> None:
        """Extend the leases a live worker holds, so that only a dead worker's lapse."""
        if not keys:
            return
        lease_until = self._clock() + lease

        async def work(connection: AsyncConnection) -> None:
            await connection.execute(
                update(deliveries)
                .where(deliveries.c.key.in_(keys), deliveries.c.status == "sending")
                .values(lease_until=lease_until)
            )

        await self._run(work)

    async def blocking(self, addresses: Sequence[str]) -> dict[str, Suppression]:
        """The suppressions in force (scope `all`) for these addresses, in one query."""

        async def work(connection: AsyncConnection) -> dict[str, Suppression]:
            return await lookup_blocking(connection, addresses, self._clock())

        found: dict[str, Suppression] = await self._run(work)
        return found

    async def in_force(
        self, targets: Sequence[tuple[str, str | None]]
    ) -> dict[tuple[str, str], Suppression]:
        """The suppressions in force for an event's (address, optional scope) pairs, scope `all`
        and each pair's own, in one query (`ledger/suppressions.py`)."""

        async def work(connection: AsyncConnection) -> dict[tuple[str, str], Suppression]:
            return await lookup_in_force(connection, targets, self._clock())

        found: dict[tuple[str, str], Suppression] = await self._run(work)
        return found

    async def unsubscribe(
        self, address: str, category: str, partner_id: str, source: str, actor: str = "recipient"
    ) -> bool:
        """An audited `unsubscribed` entry for one (category, partner); True if added."""
        return await SuppressionList(self).unsubscribe(address, category, partner_id, source, actor)

    async def resubscribe(
        self, address: str, category: str, partner_id: str, source: str, actor: str = "recipient"
    ) -> bool:
        """Remove that entry again, audited; True if there was one."""
        return await SuppressionList(self).resubscribe(address, category, partner_id, source, actor)

    async def unsubscribed_scopes(self, address: str) -> list[str]:
        """The (category, partner) scopes `address` has unsubscribed from, sorted."""
        return await SuppressionList(self).unsubscribed_scopes(address)

    async def record_feedback(self, report: FeedbackReport) -> FeedbackOutcome | None:
        """A verified bounce or complaint: the suppression and the delivery's new status in one
        transaction (`ledger/feedback.py`); None when it names nothing Herald sent."""

        async def work(connection: AsyncConnection) -> FeedbackOutcome | None:
            return await record_feedback(connection, self._dialect, self._clock(), report)

        outcome: FeedbackOutcome | None = await self._run(work, URGENT)
        return outcome

    async def deliveries_of_event(self, source: str, event_id: str) -> list[DeliveryRecord]:
        async def work(connection: AsyncConnection) -> list[DeliveryRecord]:
            rows = await connection.execute(
                select(deliveries)
                .where(deliveries.c.event_source == source, deliveries.c.event_id == event_id)
                .order_by(deliveries.c.notification, deliveries.c.recipient)
            )
            return [delivery_record(row) for row in rows]

        records: list[DeliveryRecord] = await self._run(work)
        return records
