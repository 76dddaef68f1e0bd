"""The replay audit trail: who requeued, imported or purged dead letters, when, with which
filters, with what counts and outcome (`herald replay audit`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from herald.ledger.store import SqlLedger, as_utc
from herald.ledger.tables import replay_audit


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    started_at: datetime
    finished_at: datetime | None
    actor: str
    action: str
    dry_run: bool
    filters: dict[str, Any]
    counts: dict[str, int]
    outcome: str
    detail: str | None


class AuditLog:
    def __init__(self, ledger: SqlLedger) -> None:
        self._ledger = ledger

    async def start(
        self, action: str, actor: str, filters: dict[str, Any], dry_run: bool = False
    ) -> int:
        """Record an operation as started; returns its id for `finish`."""

        async def work(connection: AsyncConnection) -> int:
            result = await connection.execute(
                insert(replay_audit)
                .values(
                    started_at=self._ledger.now(),
                    actor=actor[:255],
                    action=action,
                    dry_run=dry_run,
                    filters=json.dumps(filters, sort_keys=True, default=str),
                    counts="{}",
                    outcome="started",
                )
                .returning(replay_audit.c.id)
            )
            return int(result.scalar_one())

        entry_id: int = await self._ledger.run(work)
        return entry_id

    async def finish(
        self, entry_id: int, outcome: str, counts: dict[str, int], detail: str | None = None
    ) -> None:
        async def work(connection: AsyncConnection) -> None:
            await connection.execute(
                update(replay_audit)
                .where(replay_audit.c.id == entry_id)
                .values(
                    finished_at=self._ledger.now(),
                    outcome=outcome,
                    counts=json.dumps(counts, sort_keys=True),
                    detail=None if detail is None else detail[:2000],
                )
            )

        await self._ledger.run(work)

    async def entries(self, limit: int = 50) -> list[AuditEntry]:
        """The latest operations, newest first."""

        async def work(connection: AsyncConnection) -> list[AuditEntry]:
            rows = await connection.execute(
                select(replay_audit).order_by(replay_audit.c.id.desc()).limit(limit)
            )
            return [
                AuditEntry(
                    id=row.id,
                    started_at=as_utc(row.started_at),
                    finished_at=None if row.finished_at is None else as_utc(row.finished_at),
                    actor=row.actor,
                    action=row.action,
                    dry_run=bool(row.dry_run),
                    filters=json.loads(row.filters),
                    counts=json.loads(row.counts),
                    outcome=row.outcome,
                    detail=row.detail,
                )
                for row in rows
            ]

        entries: list[AuditEntry] = await self._ledger.run(work)
        return entries
