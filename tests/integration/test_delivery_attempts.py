"""The poison guard's durable attempt count (ledger.attempts) on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from herald.ledger.attempts import DeliveryAttempts
from herald.ledger.store import SqlLedger

pytestmark = pytest.mark.integration


async def test_attempts_count_until_ended_and_survive_a_reopen(
    ledger: SqlLedger, database_url: str
) -> None:
    attempts = DeliveryAttempts(ledger)
    identity = f"herald.orders poison-{uuid.uuid4().hex[:8]}"
    assert await attempts.begin(identity) == 1
    assert await attempts.begin(identity) == 2  # the process ended in between: never ended

    reopened = await SqlLedger.open(database_url)  # a restarted process, another replica
    try:
        assert await DeliveryAttempts(reopened).begin(identity) == 3
    finally:
        await reopened.close()

    await attempts.end(identity)
    assert await attempts.begin(identity) == 1  # an attempt that ended is forgotten
    other = f"herald.orders other-{uuid.uuid4().hex[:8]}"
    assert await attempts.begin(other) == 1
