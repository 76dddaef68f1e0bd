"""The ledger's values, shared by every ledger (SQL, in memory) and by what reads them: a new
delivery to claim, the claim it gets, the outcome that settles it, and the record support reads
back (`herald deliveries find`)."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime


class ClaimState(enum.Enum):
    NEW = "new"  # first attempt: send
    RESUMED = "resumed"  # an earlier attempt failed or its worker died: send again
    SENT = "sent"  # already delivered: suppress
    FAILED = "failed"  # already failed permanently: suppress
    BLOCKED = "blocked"  # already recorded as blocked by a suppression: suppress
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
class HardBounce:
    """A suppression to add with a failed delivery, in the same transaction: the server said
    the address does not exist. `evidence` is its reply (at most 500 characters are kept)."""

    address: str
    evidence: str


@dataclass(frozen=True, slots=True)
class Settlement:
    """The outcome of one delivery attempt: `sent`, `failed` (permanent), `retrying`, or
    `blocked` (by a suppression)."""

    key: str
    status: str
    detail: str | None = None
    provenance: Provenance | None = None  # of a rendered email; kept when a later one has none
    hard_bounce: HardBounce | None = None  # with `failed`: suppress the address (source smtp)


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
    status: str  # sending, sent, failed, retrying, blocked
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


# Suppressions (`ledger/suppressions.py`) ---------------------------------------------------

REASONS = ("hard_bounce", "complaint", "manual", "unsubscribed")
# When one address has several suppressions, the one that blocks the most types decides: a hard
# bounce or an operator's decision blocks every type, a complaint or an unsubscribe all but the
# essential ones (catalog `essential`).
_STRENGTH = {"hard_bounce": 0, "manual": 1, "complaint": 2, "unsubscribed": 3}


@dataclass(frozen=True, slots=True)
class Suppression:
    """One entry of the list. Its fields are the JSON of `herald suppressions list`."""

    address: str
    scope: str
    reason: str
    source: str
    evidence: str | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None

    def blocks(self, essential: bool) -> bool:
        """Whether it stops a notification type; `essential` is the type's catalog mark."""
        return self.reason in ("hard_bounce", "manual") or not essential

    def describe(self) -> str:
        """The `detail` of a delivery it blocked; a scoped entry names its scope (read back by
        `blocked_scope`)."""
        scope = "" if self.scope == "all" else f" in {self.scope}"
        return f"suppressed: {self.reason}{scope} ({self.source}, {self.created_at.isoformat()})"


_BLOCKED_IN_SCOPE = re.compile(r"suppressed: [a-z_]+ in (\S+) \(")


def blocked_scope(detail: str | None) -> str | None:
    """The scope of the suppression a blocked delivery's `detail` names (`describe`); None for
    scope `all`."""
    found = _BLOCKED_IN_SCOPE.match(detail or "")
    return None if found is None else found.group(1)


# Where an unsubscribe comes from (issue 19): the mail client's one-click POST (RFC 8058), the
# public page, or an operator's `herald suppressions unsubscribe`.
UNSUBSCRIBE_SOURCES = ("one-click", "page", "cli")
EVERYWHERE = "all"

# What an event's recipients have in force: (address as given, scope) -> the strongest
# suppression of that scope. Scope `all` for every address looked up, and each optional
# delivery's own (category, partner) scope (`catalog/optional.py`).
InForce = Mapping[tuple[str, str], Suppression]


def blocking_suppression(
    found: InForce, address: str, scope: str | None, essential: bool
) -> Suppression | None:
    """The suppression that stops one delivery, if any. An entry of scope `all` blocks as
    `Suppression.blocks` says; a scoped entry (an unsubscribe from one category of one partner)
    blocks only a delivery the recipient may unsubscribe from, of that very scope (`scope` is
    None for mandatory mail, which no scoped entry stops)."""
    everywhere = found.get((address, EVERYWHERE))
    if everywhere is not None and everywhere.blocks(essential):
        return everywhere
    return None if scope is None else found.get((address, scope))


def normalise_address(address: str) -> str:
    """The domain lower-cased, the local part as given."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return address.strip()
    return f"{local}@{domain.lower()}"


def strongest(entries: Iterable[Suppression]) -> Suppression | None:
    """The suppression that blocks the most types, of those given."""
    return min(entries, key=lambda entry: _STRENGTH.get(entry.reason, 99), default=None)
