"""What the workflow needs from a ledger, and nothing more: the `Ledger` protocol that
`Pipeline` and the lease keeper are typed by.

It lives here, where it is consumed, rather than in the ledger room: the interface is defined by
what the pipeline calls (a new method on `SqlLedger` does not widen it), and the workflow may
import the ledger room while the ledger must never import the workflow. Both `SqlLedger`
(`ledger/store.py`) and `MemoryLedger` (`ledger/memory.py`) satisfy it structurally, and the
contract tests (`tests/integration/test_ledger_contract.py`) hold them to the same behaviour.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from herald.ledger.records import Claim, NewDelivery, Settlement, Suppression

if TYPE_CHECKING:
    from herald.ledger.memory import MemoryLedger
    from herald.ledger.store import SqlLedger


class Ledger(Protocol):
    """Processed events' duplicate keys and delivery claims with leases (NOTIFICATIONS.md 6.1)."""

    def now(self) -> datetime:
        """The ledger's clock, which its leases and retry windows are measured by."""
        ...

    async def is_processed(self, source: str, event_id: str) -> bool:
        """Whether the event (`source`, `id`) was marked processed (EVENTS.md 3.2)."""
        ...

    async def in_force(
        self, targets: Sequence[tuple[str, str | None]]
    ) -> dict[tuple[str, str], Suppression]:
        """The suppressions in force for an event's recipients, given as (address, the scope of
        an optional delivery or None): scope `all` for each address and each pair's own scope,
        keyed by (address as given, scope), the strongest of each; one lookup per event."""
        ...

    async def claim_many(self, batch: Sequence[NewDelivery], lease: timedelta) -> dict[str, Claim]:
        """Claim every delivery of one event at once: new ones and those released or whose
        lease expired are leased to the caller for `lease`; the others report their state."""
        ...

    async def settle(
        self,
        outcomes: Sequence[Settlement],
        processed: tuple[str, str, str] | None = None,
    ) -> None:
        """Record outcomes and, when given (`source`, `id`, `type`), mark the event processed,
        all or nothing."""
        ...

    def record_now(self, outcomes: Sequence[Settlement]) -> asyncio.Future[None]:
        """Record urgent outcomes (an email the server accepted) ahead of other work; the
        future completes once they are stored, and may be shielded from cancellation."""
        ...

    async def renew(self, keys: Sequence[str], lease: timedelta) -> None:
        """Extend the leases still held (status `sending`) on these keys by `lease` from now."""
        ...


if TYPE_CHECKING:  # mypy holds both ledgers to the protocol, structurally

    def _both_ledgers_conform(sql: SqlLedger, memory: MemoryLedger) -> tuple[Ledger, Ledger]:
        return sql, memory
