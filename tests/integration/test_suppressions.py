"""The suppression list on both SQL dialects: idempotent adds, removes, filters, the one-query
lookup of an event's recipients, the audit of every change, and an older ledger gaining the
tables at start."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, inspect

from herald.ledger.engine import create_engine
from herald.ledger.store import SqlLedger
from herald.ledger.suppressions import SuppressionList, normalise_address
from herald.ledger.tables import metadata

pytestmark = pytest.mark.integration


def test_an_address_is_normalised_in_its_domain_only() -> None:
    assert normalise_address("Jane.Doe@Example.COM") == "Jane.Doe@example.com"
    assert normalise_address(' "a@b"@Example.org ') == '"a@b"@example.org'


async def test_add_is_idempotent_and_audited(ledger: SqlLedger) -> None:
    listing = SuppressionList(ledger)
    assert await listing.add("Jane@Example.com", "hard_bounce", "smtp", "herald", "550 5.1.1")
    assert not await listing.add("Jane@EXAMPLE.com", "hard_bounce", "smtp", "herald", "again")
    assert await listing.add("Jane@example.com", "complaint", "cli", "ops", note="ticket 7")
    (bounce, complaint) = await listing.entries()
    assert (bounce.address, bounce.reason, bounce.source, bounce.evidence, bounce.scope) == (
        "Jane@example.com",
        "hard_bounce",
        "smtp",
        "550 5.1.1",
        "all",
    )
    assert (complaint.reason, complaint.created_by) == ("complaint", "ops")
    audit = await listing.audit()
    assert [(entry.action, entry.reason, entry.actor, entry.note) for entry in audit] == [
        ("add", "complaint", "ops", "ticket 7"),
        ("add", "hard_bounce", "herald", "550 5.1.1"),
    ]


async def test_evidence_is_cut_to_500_characters(ledger: SqlLedger) -> None:
    listing = SuppressionList(ledger)
    await listing.add("a@example.com", "hard_bounce", "smtp", "herald", "x" * 2000)
    (entry,) = await listing.entries()
    assert entry.evidence == "x" * 500


async def test_an_unknown_reason_is_refused(ledger: SqlLedger) -> None:
    with pytest.raises(ValueError):
        await SuppressionList(ledger).add("a@example.com", "annoyed", "cli", "ops")


async def test_remove_deletes_and_audits_each_row(ledger: SqlLedger) -> None:
    listing = SuppressionList(ledger)
    await listing.add("a@example.com", "hard_bounce", "smtp", "herald")
    await listing.add("a@example.com", "manual", "cli", "ops")
    await listing.add("b@example.com", "manual", "cli", "ops")
    assert await listing.remove("a@EXAMPLE.com", "support", note="mailbox fixed") == 2
    assert await listing.remove("a@example.com", "support") == 0
    assert [entry.address for entry in await listing.entries()] == ["b@example.com"]
    removes = [entry for entry in await listing.audit() if entry.action == "remove"]
    assert sorted(entry.reason for entry in removes) == ["hard_bounce", "manual"]
    assert {(entry.actor, entry.note) for entry in removes} == {("support", "mailbox fixed")}


async def test_entries_filter_by_address_reason_and_time(ledger: SqlLedger) -> None:
    listing = SuppressionList(ledger)
    old = ledger.now() - timedelta(days=10)
    await listing.add("a@example.com", "hard_bounce", "import", "ops", created_at=old)
    await listing.add("b@example.com", "complaint", "cli", "ops")
    await listing.add("b@example.com", "manual", "cli", "ops")
    assert [e.reason for e in await listing.entries(address="b@Example.com")] == [
        "complaint",
        "manual",
    ]
    assert [e.address for e in await listing.entries(reason="hard_bounce")] == ["a@example.com"]
    recent = await listing.entries(since=ledger.now() - timedelta(days=1))
    assert {e.address for e in recent} == {"b@example.com"}


async def test_blocking_looks_up_all_recipients_in_one_query(ledger: SqlLedger) -> None:
    listing = SuppressionList(ledger)
    await listing.add("a@example.com", "complaint", "cli", "ops")
    await listing.add("a@example.com", "hard_bounce", "smtp", "herald")
    await listing.add("c@example.com", "unsubscribed", "cli", "ops", scope="newsletters")
    await listing.add(
        "d@example.com", "manual", "cli", "ops", expires_at=ledger.now() - timedelta(seconds=1)
    )
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    sync = ledger._batches._sync  # SQLite runs its transactions on a synchronous engine
    engine = ledger._engine.sync_engine if sync is None else sync._engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        found = await listing.blocking(
            ["a@EXAMPLE.com", "b@example.com", "c@example.com", "d@example.com"]
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert list(found) == ["a@EXAMPLE.com"]  # keyed as given; scope and expiry respected
    assert found["a@EXAMPLE.com"].reason == "hard_bounce"  # the strongest
    assert len([s for s in statements if "suppressions" in s]) == 1


async def test_an_older_ledger_gains_the_suppression_tables(database_url: str) -> None:
    """A ledger of an earlier release (every table but these two) gains them at start."""
    engine = create_engine(database_url)
    older = [table for table in metadata.sorted_tables if not table.name.startswith("suppression")]
    async with engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)
        await connection.run_sync(lambda sync: metadata.create_all(sync, tables=older))
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        assert "suppressions" not in names
    await engine.dispose()
    upgraded = await SqlLedger.open(database_url)
    try:
        listing = SuppressionList(upgraded)
        assert await listing.add("a@example.com", "manual", "cli", "ops")
        assert len(await listing.entries()) == 1
        assert len(await listing.audit()) == 1
    finally:
        await upgraded.close()


async def test_scoped_and_unscoped_suppressions_come_in_one_query(ledger: SqlLedger) -> None:
    listing = SuppressionList(ledger)
    renewals = "category:renewals/partner:org-1204"
    assert await listing.unsubscribe("a@example.com", "renewals", "org-1204", "one-click")
    await listing.add("b@example.com", "complaint", "cli", "ops")
    await listing.unsubscribe("b@example.com", "orders", "org-1204", "page")
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    sync = ledger._batches._sync
    engine = ledger._engine.sync_engine if sync is None else sync._engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        found = await listing.in_force(
            [("a@example.com", renewals), ("b@example.com", renewals), ("c@example.com", None)]
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert {key: entry.reason for key, entry in found.items()} == {
        ("a@example.com", renewals): "unsubscribed",
        ("b@example.com", "all"): "complaint",
    }
    assert len([s for s in statements if "suppressions" in s]) == 1


async def test_unsubscribe_and_resubscribe_are_audited_with_their_source(
    ledger: SqlLedger,
) -> None:
    listing = SuppressionList(ledger)
    assert await ledger.unsubscribe("a@Example.com", "trial_activity", "org-1204", "one-click")
    assert await ledger.resubscribe("a@example.com", "trial_activity", "org-1204", "page")
    assert await ledger.unsubscribe("a@example.com", "trial_activity", "org-1204", "cli", "ops")
    scope = "category:trial_activity/partner:org-1204"
    audit = list(reversed(await listing.audit()))
    assert [(e.action, e.reason, e.scope, e.source, e.actor) for e in audit] == [
        ("add", "unsubscribed", scope, "one-click", "recipient"),
        ("remove", "unsubscribed", scope, "page", "recipient"),
        ("add", "unsubscribed", scope, "cli", "ops"),
    ]
    (entry,) = await listing.entries(reason="unsubscribed")
    assert (entry.address, entry.scope, entry.created_by) == ("a@example.com", scope, "ops")
    assert await ledger.unsubscribed_scopes("a@example.com") == [scope]


async def test_a_long_partner_id_still_fits_the_scope_column(ledger: SqlLedger) -> None:
    partner = "p" * 128
    assert await ledger.unsubscribe("a@example.com", "catalog_changes", partner, "page")
    (scope,) = await ledger.unsubscribed_scopes("a@example.com")
    assert scope.startswith("category:catalog_changes/partner-sha256:") and len(scope) <= 100
    assert await ledger.resubscribe("a@example.com", "catalog_changes", partner, "page")
