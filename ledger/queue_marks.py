"""How old the oldest message of a queue that nobody consumes is (the dead-letter queue),
without touching its messages: peeking would reorder them under the replay tool's feet.

Every replica's queue watch calls `observe`: the first to see the queue non-empty records the
time, and seeing it empty clears it. The replay tool, which reads every message, records the
exact oldest rejection time after each operation. The age is `now - oldest_at`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from herald.ledger.store import SqlLedger, as_utc
from herald.ledger.tables import queue_marks


class QueueMarks:
    def __init__(self, ledger: SqlLedger) -> None:
        self._ledger = ledger

    async def observe(self, queue: str, messages: int) -> datetime | None:
        """Record what the watch saw; returns since when the queue has held messages."""
        now = self._ledger.now()

        async def work(connection: AsyncConnection) -> datetime | None:
            if messages == 0:
                await connection.execute(delete(queue_marks).where(queue_marks.c.queue == queue))
                return None
            dialect = postgresql if self._ledger.dialect == "postgresql" else sqlite
            await connection.execute(
                dialect.insert(queue_marks)
                .values(queue=queue, oldest_at=now)
                .on_conflict_do_nothing()
            )
            row = await connection.execute(
                select(queue_marks.c.oldest_at).where(queue_marks.c.queue == queue)
            )
            return as_utc(row.scalar_one())

        oldest: datetime | None = await self._ledger.run(work)
        return oldest

    async def set_oldest(self, queue: str, oldest: datetime | None) -> None:
        """Record the exact time of the oldest message (None: the queue is empty)."""

        async def work(connection: AsyncConnection) -> None:
            await connection.execute(delete(queue_marks).where(queue_marks.c.queue == queue))
            if oldest is not None:
                await connection.execute(queue_marks.insert().values(queue=queue, oldest_at=oldest))

        await self._ledger.run(work)
