"""A ledger in memory, for unit tests and tools that need no database: the same claims, leases,
outcomes and duplicate keys as `SqlLedger`, held in dicts by one process and lost with it.

The contract tests (`tests/integration/test_ledger_contract.py`) run the same bodies against it,
SQLite and PostgreSQL. Each method finishes without awaiting, so on one event loop every call is
atomic, as a transaction is for the SQL ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from herald.catalog.optional import UnsubscribeScope
from herald.clock import Clock, utc_now
from herald.ledger.records import (
    EVERYWHERE,
    UNSUBSCRIBE_SOURCES,
    Claim,
    ClaimState,
    DeliveryRecord,
    NewDelivery,
    Settlement,
    Suppression,
    normalise_address,
    strongest,
)

_SETTLED_STATES = {
    "sent": ClaimState.SENT,
    "failed": ClaimState.FAILED,
    "blocked": ClaimState.BLOCKED,
    "bounced": ClaimState.SENT,
    "complained": ClaimState.SENT,
}


@dataclass(slots=True)
class _Row:
    """A delivery as stored: its record, and the lease of the worker sending it."""

    record: DeliveryRecord
    lease_until: datetime | None


class MemoryLedger:
    def __init__(self, clock: Clock = utc_now) -> None:
        self._clock = clock
        self._processed: dict[tuple[str, str], datetime] = {}
        self._deliveries: dict[str, _Row] = {}
        self._suppressions: dict[tuple[str, str, str], Suppression] = {}

    def now(self) -> datetime:
        return self._clock()

    # Processed events (EVENTS.md 3.2) ---------------------------------------------------------

    async def is_processed(self, source: str, event_id: str) -> bool:
        return (source, event_id) in self._processed

    async def purge_processed(self, older_than: timedelta) -> int:
        cutoff = self._clock() - older_than
        old = [key for key, processed_at in self._processed.items() if processed_at < cutoff]
        for key in old:
            del self._processed[key]
        return len(old)

    # Deliveries (NOTIFICATIONS.md 6.1) ---------------------------------------------------------

    async def claim_many(self, batch: Sequence[NewDelivery], lease: timedelta) -> dict[str, Claim]:
        """New deliveries are leased; released or expired ones are taken over; the rest report
        their state (as `SqlLedger.claim_many`)."""
        now = self._clock()
        lease_until = now + lease
        claims: dict[str, Claim] = {}
        for delivery in batch:
            if delivery.key in claims:
                continue
            row = self._deliveries.get(delivery.key)
            if row is None:
                self._deliveries[delivery.key] = _Row(_new_record(delivery, now), lease_until)
                claims[delivery.key] = Claim(ClaimState.NEW, 1, now)
                continue
            record = row.record
            expired = row.lease_until is not None and row.lease_until < now
            if record.status == "retrying" or (record.status == "sending" and expired):
                record = replace(
                    record, status="sending", attempts=record.attempts + 1, last_attempt_at=now
                )
                self._deliveries[delivery.key] = _Row(record, lease_until)
                state = ClaimState.RESUMED
            else:
                state = _SETTLED_STATES.get(record.status, ClaimState.BUSY)
            claims[delivery.key] = Claim(state, record.attempts, record.first_attempt_at)
        return claims

    async def settle(
        self,
        outcomes: Sequence[Settlement],
        processed: tuple[str, str, str] | None = None,
    ) -> None:
        """Record outcomes and, when given (`source`, `id`, `type`), mark the event processed."""
        self._settle(outcomes, processed)

    def record_now(self, outcomes: Sequence[Settlement]) -> asyncio.Future[None]:
        """Record at once; the future is already done."""
        self._settle(outcomes, None)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def _settle(
        self, outcomes: Sequence[Settlement], processed: tuple[str, str, str] | None
    ) -> None:
        now = self._clock()
        for outcome in outcomes:
            row = self._deliveries.get(outcome.key)
            if row is None:
                continue
            provenance = outcome.provenance
            record = replace(
                row.record,
                status=outcome.status,
                detail=outcome.detail,
                completed_at=now if outcome.status in ("sent", "failed", "blocked") else None,
            )
            if provenance is not None:  # a settlement without one keeps the recorded one
                record = replace(
                    record,
                    template_version=provenance.template_version,
                    locale=provenance.locale,
                    brand=provenance.brand,
                )
            self._deliveries[outcome.key] = _Row(record, None)
            if outcome.hard_bounce is not None:
                bounce = outcome.hard_bounce
                self.suppress(bounce.address, "hard_bounce", "smtp", evidence=bounce.evidence)
        if processed is not None:
            source, event_id, _ = processed
            self._processed.setdefault((source, event_id), now)

    async def renew(self, keys: Sequence[str], lease: timedelta) -> None:
        lease_until = self._clock() + lease
        for key in keys:
            row = self._deliveries.get(key)
            if row is not None and row.record.status == "sending":
                row.lease_until = lease_until

    # Suppressions ------------------------------------------------------------------------------

    def suppress(
        self,
        address: str,
        reason: str,
        source: str = "cli",
        scope: str = "all",
        expires_at: datetime | None = None,
        evidence: str | None = None,
    ) -> None:
        """Add a suppression (once per address, scope and reason), as `SuppressionList.add`."""
        address = normalise_address(address)
        evidence = None if evidence is None else evidence[:500]
        now = self._clock()
        entry = Suppression(address, scope, reason, source, evidence, now, source, expires_at)
        self._suppressions.setdefault((address, scope, reason), entry)

    def unsuppress(self, address: str) -> None:
        address = normalise_address(address)
        for key in [key for key in self._suppressions if key[0] == address]:
            del self._suppressions[key]

    async def blocking(self, addresses: Sequence[str]) -> dict[str, Suppression]:
        now = self._clock()
        found: dict[str, Suppression] = {}
        for address in addresses:
            normalised = normalise_address(address)
            chosen = strongest(
                entry
                for (listed, scope, _), entry in self._suppressions.items()
                if listed == normalised
                and scope == "all"
                and (entry.expires_at is None or entry.expires_at > now)
            )
            if chosen is not None:
                found[address] = chosen
        return found

    async def in_force(
        self, targets: Sequence[tuple[str, str | None]]
    ) -> dict[tuple[str, str], Suppression]:
        """As `SqlLedger.in_force`: scope `all` and each pair's own scope."""
        now = self._clock()
        found: dict[tuple[str, str], Suppression] = {}
        for address, scope in targets:
            normalised = normalise_address(address)
            for wanted in (EVERYWHERE, scope):
                if wanted is None:
                    continue
                chosen = strongest(
                    entry
                    for (listed, listed_scope, _), entry in self._suppressions.items()
                    if (listed, listed_scope) == (normalised, wanted)
                    and (entry.expires_at is None or entry.expires_at > now)
                )
                if chosen is not None:
                    found[(address, wanted)] = chosen
        return found

    async def unsubscribe(
        self, address: str, category: str, partner_id: str, source: str, actor: str = "recipient"
    ) -> bool:
        """As `SqlLedger.unsubscribe` (this ledger keeps no audit)."""
        if source not in UNSUBSCRIBE_SOURCES:
            raise ValueError(f"unknown unsubscribe source {source!r}")
        scope = UnsubscribeScope(category, partner_id).scope
        key = (normalise_address(address), scope, "unsubscribed")
        if key in self._suppressions:
            return False
        self.suppress(address, "unsubscribed", source, scope=scope)
        return True

    async def resubscribe(
        self, address: str, category: str, partner_id: str, source: str, actor: str = "recipient"
    ) -> bool:
        if source not in UNSUBSCRIBE_SOURCES:
            raise ValueError(f"unknown unsubscribe source {source!r}")
        scope = UnsubscribeScope(category, partner_id).scope
        return (
            self._suppressions.pop((normalise_address(address), scope, "unsubscribed"), None)
            is not None
        )

    async def unsubscribed_scopes(self, address: str) -> list[str]:
        now = self._clock()
        normalised = normalise_address(address)
        return sorted(
            {
                scope
                for (listed, scope, reason), entry in self._suppressions.items()
                if listed == normalised
                and reason == "unsubscribed"
                and scope != EVERYWHERE
                and (entry.expires_at is None or entry.expires_at > now)
            }
        )

    async def deliveries_of_event(self, source: str, event_id: str) -> list[DeliveryRecord]:
        records = [
            row.record
            for row in self._deliveries.values()
            if (row.record.event_source, row.record.event_id) == (source, event_id)
        ]
        return sorted(records, key=lambda record: (record.notification, record.recipient))


def _new_record(delivery: NewDelivery, now: datetime) -> DeliveryRecord:
    return DeliveryRecord(
        notification=delivery.notification,
        channel=delivery.channel,
        recipient=delivery.recipient,
        event_source=delivery.event_source,
        event_id=delivery.event_id,
        message_id=delivery.message_id,
        status="sending",
        attempts=1,
        first_attempt_at=now,
        last_attempt_at=now,
        completed_at=None,
        detail=None,
    )
