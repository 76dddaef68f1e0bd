"""The suppression list in the pipeline, with the in-memory ledger and a fake sender: a
suppressed recipient is recorded `blocked` and never reaches the sender, the others of the same
event are sent, the outcome is counted, and the catalog's essential marks decide what a
complaint blocks."""

from __future__ import annotations

from typing import Any

import pytest

from herald.catalog.config import CategoryRecipients
from herald.catalog.spec import NotificationSpec
from herald.errors import PermanentSendError
from herald.ledger.health import LedgerUnavailable
from herald.ledger.memory import MemoryLedger
from herald.schemas.examples import load_example
from herald.senders.memory import MemorySender
from herald.workflow.pipeline import DeliveryReport, Pipeline
from tests import support
from tests.support import counter

OPERATOR = "sara.holm@operator.example"
CUSTOMER = "jonas@bluepeak.example"


async def test_a_hard_bounced_recipient_is_blocked_and_the_others_are_sent(
    pipeline: Pipeline, ledger: MemoryLedger, sender: MemorySender
) -> None:
    placed: dict[str, Any] = load_example("orders.order.placed")
    ledger.suppress(OPERATOR.replace("operator.example", "Operator.EXAMPLE"), "hard_bounce", "smtp")
    assert await pipeline.handle(support.inbound(placed)) == "sent"
    assert [email.envelope_to for email in sender.sent] == [CUSTOMER]
    records = {
        r.recipient: r for r in await ledger.deliveries_of_event(placed["source"], placed["id"])
    }
    assert records[OPERATOR].status == "blocked"
    assert records[OPERATOR].detail is not None and "hard_bounce" in records[OPERATOR].detail
    assert records[OPERATOR].completed_at is not None
    assert records[CUSTOMER].status == "sent"
    assert await ledger.is_processed(placed["source"], placed["id"])
    blocked = counter(pipeline, "herald_notifications_total", outcome="blocked")
    assert blocked == 1
    # A redelivery of the same event sends nothing more.
    assert await pipeline.handle(support.inbound(placed, redelivered=True)) == "duplicate"
    assert len(sender.sent) == 1


async def test_an_event_whose_every_recipient_is_blocked_is_accounted_blocked(
    pipeline: Pipeline, ledger: MemoryLedger, sender: MemorySender
) -> None:
    placed: dict[str, Any] = load_example("orders.order.placed")
    ledger.suppress(OPERATOR, "manual")
    ledger.suppress(CUSTOMER, "complaint")
    assert await pipeline.handle(support.inbound(placed)) == "blocked"
    assert sender.sent == []


async def test_a_removed_suppression_no_longer_blocks(
    pipeline: Pipeline, ledger: MemoryLedger, sender: MemorySender
) -> None:
    placed: dict[str, Any] = load_example("orders.order.placed")
    ledger.suppress(OPERATOR, "hard_bounce")
    ledger.unsuppress(OPERATOR)
    assert await pipeline.handle(support.inbound(placed)) == "sent"
    assert len(sender.sent) == 2


async def test_a_complaint_does_not_block_account_recovery(
    pipeline: Pipeline, ledger: MemoryLedger, sender: MemorySender
) -> None:
    recovery: dict[str, Any] = load_example("users.service_account.recovery_requested")
    deactivated: dict[str, Any] = load_example("users.service_account.deactivated")
    recovery_to = "oskar.lindqvist@northwind.example"
    deactivated_to = "julia.weber@contosodental.example"
    ledger.suppress(recovery_to, "complaint")
    ledger.suppress(deactivated_to, "complaint")
    assert await pipeline.handle(support.inbound(recovery)) == "sent"
    assert await pipeline.handle(support.inbound(deactivated)) == "blocked"
    assert [email.envelope_to for email in sender.sent] == [recovery_to]


async def test_a_hard_bounce_blocks_even_account_recovery(
    pipeline: Pipeline, ledger: MemoryLedger, sender: MemorySender
) -> None:
    recovery: dict[str, Any] = load_example("users.service_account.recovery_requested")
    ledger.suppress("oskar.lindqvist@northwind.example", "hard_bounce", "smtp")
    assert await pipeline.handle(support.inbound(recovery)) == "blocked"
    assert sender.sent == []


async def test_a_scope_that_names_no_category_and_partner_blocks_nothing(
    pipeline: Pipeline, ledger: MemoryLedger, sender: MemorySender
) -> None:
    placed: dict[str, Any] = load_example("orders.order.placed")
    ledger.suppress(OPERATOR, "unsubscribed", scope="orders")
    assert await pipeline.handle(support.inbound(placed)) == "sent"
    assert len(sender.sent) == 2


ESSENTIAL = {
    "analytics_account_activation",
    "portal_account_activation",
    "portal_account_2fa_reset",
    "service_account_activation",
    "service_account_welcome",
    "service_account_recovery",
    "service_account_2fa_reset",
}


def test_the_catalog_marks_what_a_person_needs_to_get_into_their_account() -> None:
    specs: list[NotificationSpec[Any]] = list(support.catalog())
    assert {spec.id for spec in specs if spec.essential} == ESSENTIAL


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        (["blocked", "suppressed"], "blocked"),
        (["blocked", "sent"], "sent"),
        (["blocked", "failed"], "failed"),
    ],
)
def test_blocked_comes_after_sent_in_the_event_outcome(outcomes: list[str], expected: str) -> None:
    assert DeliveryReport([], outcomes).event_outcome() == expected


async def test_a_bad_address_fails_and_is_suppressed_with_the_failure(
    pipeline: Pipeline, ledger: MemoryLedger, sender: MemorySender
) -> None:
    placed: dict[str, Any] = load_example("orders.order.placed")
    refusal = PermanentSendError(
        "recipient refused permanently (550)",
        550,
        enhanced="5.1.1",
        stage="rcpt",
        reply="5.1.1 <x>: user unknown",
    )
    sender.fail_next(refusal)
    assert await pipeline.handle(support.inbound(placed)) == "failed"
    records = await ledger.deliveries_of_event(placed["source"], placed["id"])
    (failed,) = [record for record in records if record.status == "failed"]
    (suppression,) = (await ledger.blocking([failed.recipient])).values()
    assert (suppression.reason, suppression.source) == ("hard_bounce", "smtp")
    assert suppression.evidence == "550 5.1.1 <x>: user unknown"


@pytest.mark.parametrize(("code", "enhanced"), [(554, "5.7.1"), (552, "5.2.2"), (554, "5.6.0")])
async def test_a_policy_content_or_full_mailbox_refusal_does_not_suppress(
    pipeline: Pipeline, ledger: MemoryLedger, sender: MemorySender, code: int, enhanced: str
) -> None:
    placed: dict[str, Any] = load_example("orders.order.placed")
    sender.fail_next(PermanentSendError("refused", code, enhanced=enhanced, stage="rcpt"))
    assert await pipeline.handle(support.inbound(placed)) == "failed"
    assert await ledger.blocking([OPERATOR, CUSTOMER]) == {}


# Unsubscribes (issue 19) -----------------------------------------------------------------------

LIST = "renewals@bluepeak.example"
PARTNER = "org-0900"  # data.partner.id of subscriptions.plan.renewal_confirmed


def renewal(event_id: str) -> dict[str, Any]:
    document: dict[str, Any] = load_example("subscriptions.plan.renewal_confirmed")
    document["id"] = event_id
    return document


def with_lists(pipeline: Pipeline, *extra: str) -> None:
    """The partner's renewals and OTJ lists hold LIST (and `extra`)."""
    entry = CategoryRecipients(emails=[LIST, *extra])
    pipeline.directory = {PARTNER: {"renewals": entry, "otj_distribution": entry}}


async def outcomes(ledger: MemoryLedger, document: dict[str, Any]) -> dict[tuple[str, str], str]:
    records = await ledger.deliveries_of_event(document["source"], document["id"])
    return {(r.notification, r.recipient): r.status for r in records}


async def test_an_unsubscribe_blocks_that_category_of_that_partner_only(
    pipeline: Pipeline, ledger: MemoryLedger, sender: MemorySender
) -> None:
    # Given LIST unsubscribed from the partner's renewal alerts
    with_lists(pipeline)
    await ledger.unsubscribe(LIST, "renewals", PARTNER, "one-click")
    # When a renewal is confirmed (a renewal alert, and an OTJ notice to the OTJ list)
    document = renewal("evt-unsub-1")
    assert await pipeline.handle(support.inbound(document)) == "sent"
    # Then the renewal alert to LIST is blocked; the OTJ notice and the mandatory recipients go
    found = await outcomes(ledger, document)
    assert found[("plan_will_be_renewed", LIST)] == "blocked"
    assert found[("otj_license_renewal", LIST)] == "sent"
    assert found[("plan_will_be_renewed", OPERATOR)] == "sent"
    assert counter(pipeline, "herald_notifications_total", outcome="blocked") == 1
    (record,) = [
        r
        for r in await ledger.deliveries_of_event(document["source"], document["id"])
        if r.status == "blocked"
    ]
    assert record.detail is not None
    assert "unsubscribed in category:renewals/partner:org-0900" in record.detail
    assert ("plan_will_be_renewed", LIST) not in {
        (email.notification, email.envelope_to) for email in sender.sent
    }


async def test_an_unsubscribe_from_another_partner_blocks_nothing(
    pipeline: Pipeline, ledger: MemoryLedger, sender: MemorySender
) -> None:
    with_lists(pipeline)
    await ledger.unsubscribe(LIST, "renewals", "org-1204", "page")
    document = renewal("evt-unsub-2")
    await pipeline.handle(support.inbound(document))
    assert "blocked" not in (await outcomes(ledger, document)).values()


async def test_mandatory_mail_goes_although_the_address_unsubscribed(
    pipeline: Pipeline, ledger: MemoryLedger, sender: MemorySender
) -> None:
    # Given the vendor account manager on the renewals list too, and unsubscribed from it
    with_lists(pipeline, OPERATOR)
    await ledger.unsubscribe(OPERATOR, "renewals", PARTNER, "one-click")
    document = renewal("evt-unsub-3")
    await pipeline.handle(support.inbound(document))
    # Then the alert still reaches them: they get it by role
    assert (await outcomes(ledger, document))[("plan_will_be_renewed", OPERATOR)] == "sent"


async def test_resubscribing_sends_again(
    pipeline: Pipeline, ledger: MemoryLedger, sender: MemorySender
) -> None:
    with_lists(pipeline)
    await ledger.unsubscribe(LIST, "renewals", PARTNER, "one-click")
    await ledger.resubscribe(LIST, "renewals", PARTNER, "page")
    document = renewal("evt-unsub-4")
    await pipeline.handle(support.inbound(document))
    assert (await outcomes(ledger, document))[("plan_will_be_renewed", LIST)] == "sent"


async def test_a_complaint_of_scope_all_still_blocks_an_optional_copy(
    pipeline: Pipeline, ledger: MemoryLedger, sender: MemorySender
) -> None:
    with_lists(pipeline)
    ledger.suppress(LIST, "complaint")
    document = renewal("evt-unsub-5")
    await pipeline.handle(support.inbound(document))
    found = await outcomes(ledger, document)
    assert found[("plan_will_be_renewed", LIST)] == "blocked"
    assert found[("otj_license_renewal", LIST)] == "blocked"


async def test_a_failed_suppression_lookup_sends_nothing_and_leaves_no_claim_behind(
    pipeline: Pipeline, ledger: MemoryLedger, sender: MemorySender, monkeypatch: pytest.MonkeyPatch
) -> None:
    placed: dict[str, Any] = load_example("orders.order.placed")
    in_force = ledger.in_force

    async def unavailable(*_: Any) -> Any:
        raise LedgerUnavailable("suppressions unreadable")

    # Given the suppression lookup fails while the claims (sent with it) succeed
    monkeypatch.setattr(ledger, "in_force", unavailable)
    with pytest.raises(LedgerUnavailable):
        await pipeline.handle(support.inbound(placed))
    # Then nothing was sent unchecked, and the claims were released, not left leased
    assert sender.sent == []
    records = await ledger.deliveries_of_event(placed["source"], placed["id"])
    assert records and {record.status for record in records} == {"retrying"}
    # So the broker's retry sends both at once instead of waiting out the leases
    monkeypatch.setattr(ledger, "in_force", in_force)
    assert await pipeline.handle(support.inbound(placed, redelivered=True)) == "sent"
    assert len(sender.sent) == 2
