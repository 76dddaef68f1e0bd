"""The poison guard's durable count: how often the process ended while it held a message.

The consumer takes redelivered messages one at a time and calls `begin` before processing each
and `end` after. A message that ends the process (a crash in a library, the kernel's OOM
killer) never reaches `end`, so its row counts the crashes it caused, across restarts and
replicas; the consumer dead-letters it once the count passes its limit, before the broker's
delivery limit charges the innocent messages that were in flight beside it.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from herald.ledger.store import SqlLedger
from herald.ledger.tables import delivery_attempts


class DeliveryAttempts:
    def __init__(self, ledger: SqlLedger) -> None:
        self._ledger = ledger

    async def begin(self, identity: str) -> int:
        """Count one more attempt at `identity`, durably; returns the count (1 the first time)."""
        now = self._ledger.now()

        async def work(connection: AsyncConnection) -> int:
            found = await connection.execute(
                select(delivery_attempts.c.attempts).where(delivery_attempts.c.identity == identity)
            )
            previous = found.scalar_one_or_none()
            if previous is None:
                await connection.execute(
                    delivery_attempts.insert().values(
                        identity=identity, attempts=1, last_attempt_at=now
                    )
                )
                return 1
            await connection.execute(
                update(delivery_attempts)
                .where(delivery_attempts.c.identity == identity)
                .values(attempts=previous + 1, last_attempt_at=now)
            )
            return int(previous) + 1

        return int(await self._ledger.run(work))

    async def end(self, identity: str) -> None:
        """The attempt ended without ending the process: forget it."""

        async def work(connection: AsyncConnection) -> None:
            await connection.execute(
                delete(delivery_attempts).where(delivery_attempts.c.identity == identity)
            )

        await self._ledger.run(work)
