"""Reports that arrive after the 250 (issue 18): a bounce or a complaint, from a DSN or ARF
report to the bounce listener or from a provider's webhook, recorded in one transaction.

The delivery is named by the first 20 hex characters of its key, which both the VERP token
(`senders/return_path.py`) and the Message-ID (`<key[:40]@domain>`) carry. Recording a report
adds the suppression (`hard_bounce` or `complaint`, idempotent per address and reason) and moves
the delivery's row from `sent` to `bounced` or `complained`, keeping the 250 in its detail: the
row then reads "sent, then bounced". The same report twice changes nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from herald.ledger.suppressions import EVIDENCE_LIMIT, insert_suppression
from herald.ledger.tables import deliveries

FeedbackKind = Literal["bounce", "complaint"]
# The delivery status a report leaves, and the suppression reason it adds.
STATUS_OF: dict[str, str] = {"bounce": "bounced", "complaint": "complained"}
REASON_OF: dict[str, str] = {"bounce": "hard_bounce", "complaint": "complaint"}
# Statuses a report may move a delivery out of: a complaint after a bounce report is recorded
# too (it is the stronger signal for the reader), a bounce after a complaint is not.
_MOVABLE: dict[str, tuple[str, ...]] = {
    "bounced": ("sent",),
    "complained": ("sent", "bounced"),
}
DETAIL_LIMIT = 2000
KEY_PREFIX_CHARS = 20


@dataclass(frozen=True, slots=True)
class FeedbackReport:
    """One verified report. `delivery_prefix`: the first 20 hex characters of the delivery key
    (from the VERP token or the Message-ID), when known. `address`: the recipient the report is
    about; None means the delivery's own recipient (a VERP token is signed, the address inside a
    DSN is not). `evidence`: the diagnostic (kept to 500 characters, no other personal data)."""

    kind: FeedbackKind
    source: str  # dsn, arf, ses, sendgrid
    evidence: str
    delivery_prefix: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class FeedbackOutcome:
    """What recording a report did: the delivery it matched (its notification type), and
    whether it added a suppression and moved the delivery (False both times for a repeat)."""

    matched_delivery: bool
    notification: str | None
    suppression_added: bool
    delivery_updated: bool


async def record_feedback(
    connection: AsyncConnection, dialect_name: str, now: datetime, report: FeedbackReport
) -> FeedbackOutcome | None:
    """Record a report in the caller's transaction; None when it names nothing Herald sent (no
    such delivery and no address of its own): the caller rejects it."""
    row = None
    if report.delivery_prefix is not None:
        prefix = report.delivery_prefix.lower()[:KEY_PREFIX_CHARS]
        # A range over the primary key (hex keys): an index seek on every dialect.
        found = await connection.execute(
            select(
                deliveries.c.key,
                deliveries.c.notification,
                deliveries.c.recipient,
                deliveries.c.status,
                deliveries.c.detail,
            )
            .where(and_(deliveries.c.key >= prefix, deliveries.c.key < prefix + "g"))
            .where(deliveries.c.channel == "email")
            .limit(2)
        )
        rows = found.all()
        row = rows[0] if len(rows) == 1 else None
    address = report.address or (row.recipient if row is not None else None)
    if address is None:
        return None
    evidence = " ".join(report.evidence.split())[:EVIDENCE_LIMIT]
    added = await insert_suppression(
        connection,
        dialect_name,
        now,
        address,
        REASON_OF[report.kind],
        report.source,
        report.source,
        evidence=evidence,
    )
    updated = False
    if row is not None:
        status = STATUS_OF[report.kind]
        if row.status in _MOVABLE[status]:
            detail = f"{row.detail or ''}; then {status} ({report.source}): {evidence}"
            result = await connection.execute(
                update(deliveries)
                .where(deliveries.c.key == row.key, deliveries.c.status == row.status)
                .values(status=status, detail=detail.strip("; ")[:DETAIL_LIMIT])
            )
            updated = result.rowcount == 1
    return FeedbackOutcome(
        matched_delivery=row is not None,
        notification=None if row is None else row.notification,
        suppression_added=added,
        delivery_updated=updated,
    )
