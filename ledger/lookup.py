"""Support's question, answered from the ledger: was this notification sent to this person,
when, with which Message-ID, rendered from which templates in which language and brand, and if
not, why (`herald deliveries find`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from herald.ledger.records import DeliveryRecord
from herald.ledger.store import SqlLedger, delivery_record
from herald.ledger.tables import deliveries


async def find_deliveries(
    ledger: SqlLedger,
    *,
    event_id: str | None = None,
    recipient: str | None = None,
    since: datetime | None = None,
    limit: int = 200,
) -> list[DeliveryRecord]:
    """Deliveries of one event, or to one recipient (case-insensitive), newest first."""
    if event_id is None and recipient is None:
        raise ValueError("give an event id or a recipient")

    async def work(connection: AsyncConnection) -> list[DeliveryRecord]:
        query = select(deliveries).order_by(deliveries.c.first_attempt_at.desc()).limit(limit)
        if event_id is not None:
            query = query.where(deliveries.c.event_id == event_id)
        if recipient is not None:
            wanted = recipient.strip()
            # Exact first (indexed); the lower() comparison catches a differently cased address.
            query = query.where(
                (deliveries.c.recipient == wanted)
                | (func.lower(deliveries.c.recipient) == wanted.lower())
            )
        if since is not None:
            query = query.where(deliveries.c.first_attempt_at >= since)
        return [delivery_record(row) for row in await connection.execute(query)]

    records: list[DeliveryRecord] = await ledger.run(work)
    return records
