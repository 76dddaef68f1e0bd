"""Support's question, answered from the ledger: was this notification sent to this person,
when, with which Message-ID, rendered from which templates in which language and brand, and if
not, why (`herald deliveries find`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from herald.ledger.store import SqlLedger, as_utc
from herald.ledger.tables import deliveries


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    notification: str
    channel: str
    recipient: str
    event_source: str
    event_id: str
    message_id: str
    status: str  # sending, sent, failed, retrying
    attempts: int
    first_attempt_at: datetime
    last_attempt_at: datetime
    completed_at: datetime | None
    detail: str | None  # the server's reply when sent, the reason otherwise
    # Render provenance (emails only): the templates' content hash, their locale, the brand.
    template_version: str | None = None
    locale: str | None = None
    brand: str | None = None


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
        return [
            DeliveryRecord(
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
            for row in await connection.execute(query)
        ]

    records: list[DeliveryRecord] = await ledger.run(work)
    return records
