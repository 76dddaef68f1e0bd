"""What only the SQL ledger has, on both dialects: a schema of an older release upgraded in
place. The behaviour every ledger shares is in test_ledger_contract.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from herald.ledger.engine import create_engine
from herald.ledger.records import NewDelivery, Provenance, Settlement
from herald.ledger.store import SqlLedger
from herald.ledger.tables import metadata

pytestmark = pytest.mark.integration


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
        (old,) = await upgraded.deliveries_of_event("/s", "e")
        assert (old.status, old.provenance) == ("sent", None)
        new = NewDelivery("k" * 64, "order_placed", "email", "/s", "n", "a@b.example", "<n@h>")
        await upgraded.claim_many([new], timedelta(minutes=10))
        provenance = Provenance("feedfacecafebeef", "de", "default")
        await upgraded.record_now([Settlement(new.key, "sent", "250", provenance)])
        (recorded,) = await upgraded.deliveries_of_event("/s", "n")
        assert recorded.provenance == provenance
    finally:
        await upgraded.close()
