"""The ledger contract: the same test bodies against SQLite, PostgreSQL and the in-memory ledger
(`ledger/memory.py`), through the methods the service calls: duplicate keys, claims, leases
(busy, expired, renewed), outcomes, urgent records, provenance and purging."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest

from herald.ledger.memory import MemoryLedger
from herald.ledger.records import (
    ClaimState,
    DeliveryRecord,
    HardBounce,
    NewDelivery,
    Provenance,
    Settlement,
    Suppression,
)
from herald.ledger.store import SqlLedger
from herald.ledger.suppressions import SuppressionList
from herald.workflow.ports import Ledger
from tests.conftest import _truncate

pytestmark = pytest.mark.integration

LEASE = timedelta(minutes=10)
SOURCE, EVENT_ID = "/orders-service", "evt-1"


class ContractLedger(Ledger, Protocol):
    """The pipeline's protocol plus what the service and the tests read back."""

    async def purge_processed(self, older_than: timedelta) -> int: ...
    async def blocking(self, addresses: Sequence[str]) -> dict[str, Suppression]: ...
    async def unsubscribe(
        self, address: str, category: str, partner_id: str, source: str, actor: str = ...
    ) -> bool: ...
    async def resubscribe(
        self, address: str, category: str, partner_id: str, source: str, actor: str = ...
    ) -> bool: ...
    async def unsubscribed_scopes(self, address: str) -> list[str]: ...
    async def deliveries_of_event(self, source: str, event_id: str) -> list[DeliveryRecord]: ...


@dataclass
class Clock:
    """The ledger's clock, moved by the test (a lease running out, days passing)."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """The database of a SQL ledger, None for the in-memory one (a sync fixture, as the
    session's PostgreSQL database is made by one)."""
    if request.param == "memory":
        return None
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/herald.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def ledger(ledger_url: str | None, clock: Clock) -> AsyncIterator[ContractLedger]:
    if ledger_url is None:
        yield MemoryLedger(clock)
        return
    store = await SqlLedger.open(ledger_url, clock=clock)
    await _truncate(store)
    yield store
    await store.close()


def delivery(key: str = "k" * 64) -> NewDelivery:
    return NewDelivery(
        key=key,
        notification="order_placed",
        channel="email",
        event_source=SOURCE,
        event_id=EVENT_ID,
        recipient="mia@northwind.example",
        message_id=f"<{key}@herald>",
    )


async def claim(ledger: Ledger, key: str = "k" * 64, lease: timedelta = LEASE) -> ClaimState:
    return (await ledger.claim_many([delivery(key)], lease))[key].state


async def record_of(ledger: ContractLedger, key: str = "k" * 64) -> DeliveryRecord:
    (record,) = [
        record
        for record in await ledger.deliveries_of_event(SOURCE, EVENT_ID)
        if record.message_id == delivery(key).message_id
    ]
    return record


async def test_processed_keys(ledger: ContractLedger) -> None:
    assert not await ledger.is_processed(SOURCE, EVENT_ID)
    await ledger.settle((), processed=(SOURCE, EVENT_ID, "orders.order.placed"))
    await ledger.settle((), processed=(SOURCE, EVENT_ID, "orders.order.placed"))  # idempotent
    assert await ledger.is_processed(SOURCE, EVENT_ID)
    assert not await ledger.is_processed("/other-service", EVENT_ID)


async def test_purge_forgets_only_old_keys(ledger: ContractLedger, clock: Clock) -> None:
    await ledger.settle((), processed=("/s", "old", "orders.order.placed"))
    clock.advance(timedelta(days=9))
    await ledger.settle((), processed=("/s", "new", "orders.order.placed"))
    assert await ledger.purge_processed(timedelta(days=8)) == 1
    assert not await ledger.is_processed("/s", "old")
    assert await ledger.is_processed("/s", "new")


async def test_first_claim_is_new_and_a_second_is_busy_while_leased(
    ledger: ContractLedger,
) -> None:
    assert await claim(ledger) is ClaimState.NEW
    assert await claim(ledger) is ClaimState.BUSY


async def test_sent_delivery_is_never_claimed_again(ledger: ContractLedger) -> None:
    await claim(ledger)
    await ledger.settle([Settlement(delivery().key, "sent", "250 OK")])
    assert await claim(ledger) is ClaimState.SENT
    record = await record_of(ledger)
    assert (record.status, record.attempts, record.detail) == ("sent", 1, "250 OK")
    assert record.completed_at is not None


async def test_failed_delivery_is_not_retried(ledger: ContractLedger) -> None:
    await claim(ledger)
    await ledger.settle([Settlement(delivery().key, "failed", "550 no such user")])
    assert await claim(ledger) is ClaimState.FAILED
    record = await record_of(ledger)
    assert (record.status, record.detail) == ("failed", "550 no such user")


async def test_released_delivery_is_resumed_with_attempts_counted(
    ledger: ContractLedger, clock: Clock
) -> None:
    first = (await ledger.claim_many([delivery()], LEASE))[delivery().key]
    await ledger.settle([Settlement(delivery().key, "retrying", "451 try later")])
    record = await record_of(ledger)
    assert (record.status, record.completed_at) == ("retrying", None)
    clock.advance(timedelta(minutes=1))
    claimed = (await ledger.claim_many([delivery()], LEASE))[delivery().key]
    assert (claimed.state, claimed.attempts) == (ClaimState.RESUMED, 2)
    # The retry window counts from the first attempt, whatever the number of resumes.
    assert claimed.first_attempt_at == first.first_attempt_at


async def test_expired_lease_of_a_crashed_worker_is_taken_over(
    ledger: ContractLedger, clock: Clock
) -> None:
    await claim(ledger)
    clock.advance(LEASE + timedelta(seconds=1))
    assert await claim(ledger) is ClaimState.RESUMED


async def test_a_renewed_lease_stays_busy_past_its_first_expiry(
    ledger: ContractLedger, clock: Clock
) -> None:
    await claim(ledger)
    clock.advance(LEASE / 2)
    await ledger.renew([delivery().key], LEASE)
    clock.advance(LEASE / 2 + timedelta(seconds=1))  # past the first lease, not the renewed one
    assert await claim(ledger) is ClaimState.BUSY
    clock.advance(LEASE)
    assert await claim(ledger) is ClaimState.RESUMED


async def test_renewing_a_settled_delivery_changes_nothing(ledger: ContractLedger) -> None:
    await claim(ledger)
    await ledger.settle([Settlement(delivery().key, "sent", "250 OK")])
    await ledger.renew([delivery().key, "unknown" * 9], LEASE)
    assert await claim(ledger) is ClaimState.SENT
    assert (await record_of(ledger)).status == "sent"


async def test_concurrent_claims_give_exactly_one_winner(ledger: ContractLedger) -> None:
    states = await asyncio.gather(*(claim(ledger) for _ in range(8)))
    assert sorted(state.value for state in states).count("new") == 1
    assert all(state in (ClaimState.NEW, ClaimState.BUSY) for state in states)


async def test_deliveries_of_event(ledger: ContractLedger) -> None:
    await claim(ledger, "a" * 64)
    await claim(ledger, "b" * 64)
    await ledger.settle([Settlement("a" * 64, "sent")])
    records = await ledger.deliveries_of_event(SOURCE, EVENT_ID)
    assert {(r.message_id[1], r.status) for r in records} == {("a", "sent"), ("b", "sending")}
    assert await ledger.deliveries_of_event(SOURCE, "another-event") == []


async def test_claim_many_reports_each_state_in_one_call(ledger: ContractLedger) -> None:
    await ledger.claim_many([delivery("s" * 64), delivery("r" * 64), delivery("b" * 64)], LEASE)
    await ledger.settle(
        [Settlement("s" * 64, "sent", "250 OK"), Settlement("r" * 64, "retrying", "451")]
    )
    claims = await ledger.claim_many(
        [delivery("s" * 64), delivery("r" * 64), delivery("b" * 64), delivery("n" * 64)], LEASE
    )
    assert {key[0]: claim.state for key, claim in claims.items()} == {
        "s": ClaimState.SENT,
        "r": ClaimState.RESUMED,
        "b": ClaimState.BUSY,
        "n": ClaimState.NEW,
    }


async def test_settle_marks_the_event_processed_in_the_same_transaction(
    ledger: ContractLedger,
) -> None:
    await claim(ledger)
    await ledger.settle([Settlement(delivery().key, "sent")], processed=(SOURCE, EVENT_ID, "t"))
    assert await ledger.is_processed(SOURCE, EVENT_ID)
    assert (await record_of(ledger)).status == "sent"


async def test_record_now_stores_an_accepted_email_at_once(ledger: ContractLedger) -> None:
    await claim(ledger)
    await asyncio.shield(ledger.record_now([Settlement(delivery().key, "sent", "250 OK")]))
    assert (await record_of(ledger)).status == "sent"
    assert await claim(ledger) is ClaimState.SENT
    assert not await ledger.is_processed(SOURCE, EVENT_ID)  # only settle marks the event


async def test_a_sent_email_records_its_render_provenance(ledger: ContractLedger) -> None:
    await claim(ledger)
    provenance = Provenance("0123456789abcdef", "de", "org-1204")
    # A transient failure after rendering, then the resend that the server accepts.
    await ledger.settle([Settlement(delivery().key, "retrying", "451", provenance)])
    await claim(ledger)
    await ledger.record_now([Settlement(delivery().key, "sent", "250 OK", provenance)])
    record = await record_of(ledger)
    assert record.status == "sent"
    assert record.provenance == provenance
    assert (record.template_version, record.locale, record.brand) == (
        "0123456789abcdef",
        "de",
        "org-1204",
    )


async def test_a_settlement_without_provenance_keeps_the_recorded_one(
    ledger: ContractLedger,
) -> None:
    await claim(ledger)
    provenance = Provenance("0123456789abcdef", "en", "default")
    await ledger.settle([Settlement(delivery().key, "retrying", "451", provenance)])
    await ledger.settle([Settlement(delivery().key, "retrying", "interrupted by shutdown")])
    assert (await record_of(ledger)).provenance == provenance


async def test_an_unrendered_delivery_has_no_provenance(ledger: ContractLedger) -> None:
    await claim(ledger)
    await ledger.settle([Settlement(delivery().key, "failed", "550")])
    assert (await record_of(ledger)).provenance is None


# Suppressions ---------------------------------------------------------------------------------


async def suppress(
    ledger: ContractLedger,
    address: str,
    reason: str,
    scope: str = "all",
    expires_at: datetime | None = None,
) -> None:
    """Add a suppression: the CLI's `SuppressionList` on a SQL ledger, `suppress` in memory."""
    if isinstance(ledger, MemoryLedger):
        ledger.suppress(address, reason, "cli", scope, expires_at)
    else:
        assert isinstance(ledger, SqlLedger)
        listing = SuppressionList(ledger)
        await listing.add(address, reason, "cli", "test", scope=scope, expires_at=expires_at)


async def test_blocking_finds_the_strongest_suppression_in_force(
    ledger: ContractLedger, clock: Clock
) -> None:
    await suppress(ledger, "mia@Northwind.example", "complaint")
    await suppress(ledger, "mia@northwind.example", "hard_bounce")
    await suppress(ledger, "ola@northwind.example", "unsubscribed", scope="orders")
    await suppress(ledger, "per@northwind.example", "manual", expires_at=clock.now + LEASE)
    await suppress(ledger, "Kim@northwind.example", "manual")
    found = await ledger.blocking(
        [
            "mia@NORTHWIND.example",
            "ola@northwind.example",
            "per@northwind.example",
            "kim@northwind.example",  # the local part is kept as given: another mailbox
        ]
    )
    assert {address: entry.reason for address, entry in found.items()} == {
        "mia@NORTHWIND.example": "hard_bounce",
        "per@northwind.example": "manual",
    }
    assert found["mia@NORTHWIND.example"].address == "mia@northwind.example"
    clock.advance(LEASE * 2)
    assert list(await ledger.blocking(["per@northwind.example"])) == []
    assert await ledger.blocking([]) == {}


async def test_a_blocked_delivery_is_final(ledger: ContractLedger) -> None:
    await claim(ledger)
    await ledger.settle([Settlement(delivery().key, "blocked", "suppressed: hard_bounce")])
    assert await claim(ledger) is ClaimState.BLOCKED
    record = await record_of(ledger)
    assert (record.status, record.detail) == ("blocked", "suppressed: hard_bounce")
    assert record.completed_at is not None


async def test_a_hard_bounce_is_suppressed_with_its_failure(ledger: ContractLedger) -> None:
    await claim(ledger)
    bounce = HardBounce("mia@Northwind.EXAMPLE", "550 5.1.1 user unknown " + "x" * 600)
    await ledger.settle([Settlement(delivery().key, "failed", "refused (550)", hard_bounce=bounce)])
    assert (await record_of(ledger)).status == "failed"
    (entry,) = (await ledger.blocking(["mia@northwind.example"])).values()
    assert (entry.reason, entry.source, entry.scope) == ("hard_bounce", "smtp", "all")
    assert entry.evidence is not None and entry.evidence.startswith("550 5.1.1 user unknown")
    assert len(entry.evidence) == 500
    # The same bounce again (a redelivered failure) adds nothing.
    await ledger.settle([Settlement(delivery().key, "failed", "refused (550)", hard_bounce=bounce)])
    assert len(await ledger.blocking(["mia@northwind.example"])) == 1


RENEWALS = "category:renewals/partner:org-1204"


async def test_an_unsubscribe_is_scoped_to_one_category_of_one_partner(
    ledger: ContractLedger,
) -> None:
    # Given an unsubscribe from org-1204's renewals, and a complaint of scope all elsewhere
    assert await ledger.unsubscribe("Lists@BluePeak.example", "renewals", "org-1204", "one-click")
    assert not await ledger.unsubscribe("Lists@bluepeak.example", "renewals", "org-1204", "page")
    await suppress(ledger, "other@bluepeak.example", "complaint")
    # When an event's recipients are looked up with their scopes
    found = await ledger.in_force(
        [
            ("Lists@bluepeak.example", RENEWALS),
            ("Lists@bluepeak.example", "category:orders/partner:org-1204"),
            ("Lists@bluepeak.example", None),
            ("other@bluepeak.example", RENEWALS),
        ]
    )
    # Then the unsubscribe is found in its own scope only, keyed as given
    assert {key: entry.reason for key, entry in found.items()} == {
        ("Lists@bluepeak.example", RENEWALS): "unsubscribed",
        ("other@bluepeak.example", "all"): "complaint",
    }
    entry = found[("Lists@bluepeak.example", RENEWALS)]
    assert (entry.address, entry.scope, entry.source) == (
        "Lists@bluepeak.example",
        RENEWALS,
        "one-click",
    )
    assert await ledger.blocking(["Lists@bluepeak.example"]) == {}  # not of scope all
    assert await ledger.unsubscribed_scopes("Lists@bluepeak.example") == [RENEWALS]
    assert await ledger.unsubscribed_scopes("other@bluepeak.example") == []
    # And re-subscribing removes it
    assert await ledger.resubscribe("Lists@bluepeak.example", "renewals", "org-1204", "page")
    assert not await ledger.resubscribe("Lists@bluepeak.example", "renewals", "org-1204", "page")
    assert await ledger.unsubscribed_scopes("Lists@bluepeak.example") == []
    assert await ledger.in_force([("Lists@bluepeak.example", RENEWALS)]) == {}


async def test_an_unsubscribe_needs_a_known_source(ledger: ContractLedger) -> None:
    with pytest.raises(ValueError, match="source"):
        await ledger.unsubscribe("a@bluepeak.example", "renewals", "org-1204", "email")
