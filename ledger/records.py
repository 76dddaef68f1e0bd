"""The ledger's values, shared by every ledger (SQL, in memory) and by what reads them: a new
delivery to claim, the claim it gets, the outcome that settles it, and the record support reads
back (`herald deliveries find`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class ClaimState(enum.Enum):
    NEW = "new"  # first attempt: send
    RESUMED = "resumed"  # an earlier attempt failed or its worker died: send again
    SENT = "sent"  # already delivered: suppress
    FAILED = "failed"  # already failed permanently: suppress
    BUSY = "busy"  # another worker holds the lease right now: try later


@dataclass(frozen=True, slots=True)
class Claim:
    state: ClaimState
    attempts: int
    first_attempt_at: datetime


@dataclass(frozen=True, slots=True)
class NewDelivery:
    key: str
    notification: str
    channel: str
    event_source: str
    event_id: str
    recipient: str
    message_id: str


@dataclass(frozen=True, slots=True)
class Provenance:
    """What an email was rendered from: the templates' content hash, their locale, the brand."""

    template_version: str
    locale: str
    brand: str


@dataclass(frozen=True, slots=True)
class Settlement:
    """The outcome of one delivery attempt: `sent`, `failed` (permanent) or `retrying`."""

    key: str
    status: str
    detail: str | None = None
    provenance: Provenance | None = None  # of a rendered email; kept when a later one has none


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One delivery as the ledger holds it. Its fields are the JSON of `herald deliveries find`
    (flat, in this order)."""

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

    @property
    def provenance(self) -> Provenance | None:
        if self.template_version is None:
            return None
        return Provenance(self.template_version, self.locale or "", self.brand or "")
