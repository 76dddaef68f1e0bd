"""Reports after the 250 in the ledger, on both SQL dialects: a bounce or complaint names its
delivery by key prefix, adds the suppression and moves the row from `sent` to `bounced` or
`complained` in one transaction; a repeat changes nothing; a report naming nothing is refused;
a bounced delivery is never claimed again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from herald.ledger.feedback import FeedbackReport
from herald.ledger.records import ClaimState, NewDelivery, Settlement
from herald.ledger.store import SqlLedger
from herald.ledger.suppressions import SuppressionList

pytestmark = pytest.mark.integration

KEY = "0123456789abcdef0123" + "f" * 44
LEASE = timedelta(minutes=10)


def delivery(key: str = KEY, channel: str = "email") -> NewDelivery:
    return NewDelivery(
        key=key,
        notification="order_placed",
        channel=channel,
        event_source="/orders",
        event_id="evt-1",
        recipient="Mia@Northwind.example",
        message_id=f"<{key[:40]}@herald.example>",
    )


async def sent(ledger: SqlLedger, key: str = KEY) -> None:
    await ledger.claim_many([delivery(key)], LEASE)
    await ledger.settle([Settlement(key, "sent", "250 2.0.0 queued as 4XyZ")])


async def test_a_bounce_suppresses_the_delivery_recipient_and_marks_the_row(
    ledger: SqlLedger,
) -> None:
    await sent(ledger)
    outcome = await ledger.record_feedback(
        FeedbackReport("bounce", "dsn", "smtp; 550 5.1.1 user unknown", KEY[:20])
    )
    assert outcome is not None
    assert (outcome.matched_delivery, outcome.notification) == (True, "order_placed")
    assert (outcome.suppression_added, outcome.delivery_updated) == (True, True)
    (record,) = await ledger.deliveries_of_event("/orders", "evt-1")
    assert record.status == "bounced"
    assert (
        record.detail
        == "250 2.0.0 queued as 4XyZ; then bounced (dsn): smtp; 550 5.1.1 user unknown"
    )
    (entry,) = await SuppressionList(ledger).entries()
    assert (entry.address, entry.reason, entry.source) == (
        "Mia@northwind.example",
        "hard_bounce",
        "dsn",
    )
    # Delivered all the same: a redelivered event does not mail it again.
    claims = await ledger.claim_many([delivery()], LEASE)
    assert claims[KEY].state is ClaimState.SENT


async def test_the_same_report_twice_changes_nothing_the_second_time(ledger: SqlLedger) -> None:
    await sent(ledger)
    report = FeedbackReport("complaint", "arf", "abuse", KEY[:20])
    first = await ledger.record_feedback(report)
    again = await ledger.record_feedback(report)
    assert first is not None and again is not None
    assert (first.suppression_added, first.delivery_updated) == (True, True)
    assert (again.suppression_added, again.delivery_updated) == (False, False)
    assert len(await SuppressionList(ledger).entries()) == 1
    assert [entry.action for entry in await SuppressionList(ledger).audit()] == ["add"]


async def test_a_complaint_after_a_bounce_is_recorded_but_not_the_reverse(
    ledger: SqlLedger,
) -> None:
    await sent(ledger)
    await ledger.record_feedback(FeedbackReport("bounce", "dsn", "5.1.1", KEY[:20]))
    await ledger.record_feedback(FeedbackReport("complaint", "arf", "abuse", KEY[:20]))
    await ledger.record_feedback(FeedbackReport("bounce", "dsn", "5.1.1 again", KEY[:20]))
    (record,) = await ledger.deliveries_of_event("/orders", "evt-1")
    assert record.status == "complained"
    assert record.detail is not None and record.detail.count("then") == 2


async def test_a_provider_report_names_its_own_address(ledger: SqlLedger) -> None:
    await sent(ledger)
    outcome = await ledger.record_feedback(
        FeedbackReport("bounce", "ses", "5.1.1", KEY[:20], address="other@example.org")
    )
    assert outcome is not None and outcome.matched_delivery
    assert [entry.address for entry in await SuppressionList(ledger).entries()] == [
        "other@example.org"
    ]


async def test_a_report_for_no_delivery_and_no_address_is_refused(ledger: SqlLedger) -> None:
    assert await ledger.record_feedback(FeedbackReport("bounce", "dsn", "x", "9" * 20)) is None
    assert await SuppressionList(ledger).entries() == []
    # With an address of its own (a provider's report of mail not in this ledger) it suppresses.
    outcome = await ledger.record_feedback(
        FeedbackReport("complaint", "sendgrid", "spamreport", None, address="a@example.org")
    )
    assert outcome is not None
    assert (outcome.matched_delivery, outcome.suppression_added) == (False, True)


async def test_a_failed_delivery_is_not_moved_by_a_late_report(ledger: SqlLedger) -> None:
    await ledger.claim_many([delivery()], LEASE)
    await ledger.settle([Settlement(KEY, "failed", "550 5.1.1 no such user")])
    outcome = await ledger.record_feedback(FeedbackReport("bounce", "dsn", "5.1.1", KEY[:20]))
    assert outcome is not None and not outcome.delivery_updated
    (record,) = await ledger.deliveries_of_event("/orders", "evt-1")
    assert record.status == "failed"
