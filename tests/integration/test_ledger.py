"""The ledger on both dialects: duplicate keys, claims, leases and outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from herald.ledger.engine import create_engine
from herald.ledger.store import ClaimState, NewDelivery, Provenance, Settlement, SqlLedger
from herald.ledger.tables import metadata

pytestmark = pytest.mark.integration


def delivery(key: str = "k" * 64) -> NewDelivery:
    return NewDelivery(
        key=key,
        notification="order_placed",
        channel="email",
        event_source="/orders-service",
        event_id="evt-1",
        recipient="mia@northwind.example",
        message_id="<abc@herald>",
    )


LEASE = timedelta(minutes=10)


async def test_processed_keys(ledger: SqlLedger) -> None:
    assert not await ledger.is_processed("/orders-service", "evt-1")
    await ledger.mark_processed("/orders-service", "evt-1", "orders.order.placed")
    await ledger.mark_processed("/orders-service", "evt-1", "orders.order.placed")  # idempotent
    assert await ledger.is_processed("/orders-service", "evt-1")
    assert not await ledger.is_processed("/other-service", "evt-1")


async def test_purge_forgets_only_old_keys(ledger: SqlLedger) -> None:
    await ledger.mark_processed("/s", "old", "orders.order.placed")
    ledger._clock = lambda: datetime.now(UTC) + timedelta(days=9)
    await ledger.mark_processed("/s", "new", "orders.order.placed")
    assert await ledger.purge_processed(timedelta(days=8)) == 1
    assert not await ledger.is_processed("/s", "old")
    assert await ledger.is_processed("/s", "new")


async def test_first_claim_is_new_and_a_second_is_busy_while_leased(ledger: SqlLedger) -> None:
    assert (await ledger.claim(delivery(), LEASE)).state is ClaimState.NEW
    assert (await ledger.claim(delivery(), LEASE)).state is ClaimState.BUSY


async def test_sent_delivery_is_never_claimed_again(ledger: SqlLedger) -> None:
    await ledger.claim(delivery(), LEASE)
    await ledger.mark_sent(delivery().key, "250 OK")
    claim = await ledger.claim(delivery(), LEASE)
    assert claim.state is ClaimState.SENT
    record = await ledger.delivery(delivery().key)
    assert record is not None and (record.status, record.attempts) == ("sent", 1)


async def test_failed_delivery_is_not_retried(ledger: SqlLedger) -> None:
    await ledger.claim(delivery(), LEASE)
    await ledger.mark_failed(delivery().key, "550 no such user")
    assert (await ledger.claim(delivery(), LEASE)).state is ClaimState.FAILED


async def test_released_delivery_is_resumed_with_attempts_counted(ledger: SqlLedger) -> None:
    await ledger.claim(delivery(), LEASE)
    await ledger.release(delivery().key, "451 try later")
    claim = await ledger.claim(delivery(), LEASE)
    assert (claim.state, claim.attempts) == (ClaimState.RESUMED, 2)


async def test_expired_lease_of_a_crashed_worker_is_taken_over(ledger: SqlLedger) -> None:
    await ledger.claim(delivery(), LEASE)
    ledger._clock = lambda: datetime.now(UTC) + LEASE + timedelta(seconds=1)
    claim = await ledger.claim(delivery(), LEASE)
    assert claim.state is ClaimState.RESUMED


async def test_concurrent_claims_give_exactly_one_winner(ledger: SqlLedger) -> None:
    import asyncio

    states = await asyncio.gather(*(ledger.claim(delivery(), LEASE) for _ in range(8)))
    assert sorted(s.state.value for s in states).count("new") == 1
    assert all(s.state in (ClaimState.NEW, ClaimState.BUSY) for s in states)


async def test_deliveries_of_event(ledger: SqlLedger) -> None:
    await ledger.claim(delivery("a" * 64), LEASE)
    await ledger.claim(delivery("b" * 64), LEASE)
    await ledger.mark_sent("a" * 64)
    records = await ledger.deliveries_of_event("/orders-service", "evt-1")
    assert {(r.key[0], r.status) for r in records} == {("a", "sent"), ("b", "sending")}


async def test_claim_many_reports_each_state_in_one_call(ledger: SqlLedger) -> None:
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
    ledger: SqlLedger,
) -> None:
    await ledger.claim_many([delivery()], LEASE)
    await ledger.settle(
        [Settlement(delivery().key, "sent")], processed=("/orders-service", "evt-1", "t")
    )
    assert await ledger.is_processed("/orders-service", "evt-1")
    record = await ledger.delivery(delivery().key)
    assert record is not None and record.status == "sent"


async def test_a_sent_email_records_its_render_provenance(ledger: SqlLedger) -> None:
    await ledger.claim(delivery(), LEASE)
    provenance = Provenance("0123456789abcdef", "de", "org-1204")
    # A transient failure after rendering, then the resend that the server accepts.
    await ledger.settle([Settlement(delivery().key, "retrying", "451", provenance)])
    await ledger.claim(delivery(), LEASE)
    await ledger.record_now([Settlement(delivery().key, "sent", "250 OK", provenance)])
    record = await ledger.delivery(delivery().key)
    assert record is not None and record.status == "sent"
    assert record.provenance == provenance


async def test_a_settlement_without_provenance_keeps_the_recorded_one(ledger: SqlLedger) -> None:
    await ledger.claim(delivery(), LEASE)
    provenance = Provenance("0123456789abcdef", "en", "default")
    await ledger.settle([Settlement(delivery().key, "retrying", "451", provenance)])
    await ledger.release(delivery().key, "interrupted by shutdown")  # no provenance
    record = await ledger.delivery(delivery().key)
    assert record is not None and record.provenance == provenance


async def test_an_older_schema_gains_the_new_columns_in_place(database_url: str) -> None:
    """A ledger created by an earlier release (no provenance columns) is upgraded at start,
    keeping its rows."""
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)
        await connection.execute(
            text(
                "CREATE TABLE deliveries (key VARCHAR(64) PRIMARY KEY, notification VARCHAR(100) "
                "NOT NULL, channel VARCHAR(20) NOT NULL, event_source VARCHAR(1024) NOT NULL, "
                "event_id VARCHAR(255) NOT NULL, recipient VARCHAR(2048) NOT NULL, message_id "
                "VARCHAR(255) NOT NULL, status VARCHAR(20) NOT NULL, attempts INTEGER NOT NULL, "
                "lease_until TIMESTAMP WITH TIME ZONE, first_attempt_at TIMESTAMP WITH TIME ZONE "
                "NOT NULL, last_attempt_at TIMESTAMP WITH TIME ZONE NOT NULL, completed_at "
                "TIMESTAMP WITH TIME ZONE, detail TEXT)"
            )
        )
        await connection.execute(
            text(
                "INSERT INTO deliveries VALUES ('old', 'order_placed', 'email', '/s', 'e', "
                "'a@b.example', '<m@h>', 'sent', 1, NULL, :now, :now, :now, '250 OK')"
            ),
            {"now": datetime.now(UTC)},
        )
    await engine.dispose()
    upgraded = await SqlLedger.open(database_url)
    try:
        old = await upgraded.delivery("old")
        assert old is not None and (old.status, old.provenance) == ("sent", None)
        await upgraded.claim(delivery(), LEASE)
        provenance = Provenance("feedfacecafebeef", "de", "default")
        await upgraded.record_now([Settlement(delivery().key, "sent", "250", provenance)])
        new = await upgraded.delivery(delivery().key)
        assert new is not None and new.provenance == provenance
    finally:
        await upgraded.close()
