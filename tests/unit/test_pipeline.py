"""The composed pipeline with a fake sender and the in-memory ledger: at most once per instance,
settle-before-ack, transient versus permanent failures, lease renewal, and the outcome
metrics."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from herald.catalog.plan import plan_event
from herald.errors import PermanentSendError, RejectedMessage, TransientSendError
from herald.ledger.memory import MemoryLedger
from herald.ledger.records import ClaimState, NewDelivery
from herald.schemas.examples import load_example
from herald.senders.memory import MemorySender
from herald.service.metrics import Metrics
from herald.workflow.observer import NullObserver
from herald.workflow.pipeline import DeliveryBusy, Pipeline
from tests import support
from tests.support import counter


def new_deliveries(pipeline: Pipeline, document: dict[str, Any]) -> list[NewDelivery]:
    """The event's email deliveries as another worker would claim them."""
    event = support.event_of(document)
    return [
        NewDelivery(
            delivery.key,
            delivery.spec.id,
            "email",
            event.source,
            event.id,
            delivery.recipient.email,
            "<x@y>",
        )
        for delivery in plan_event(event, pipeline.catalog, {}).deliveries
    ]


@pytest.fixture
def placed() -> dict[str, Any]:
    return load_example("orders.order.placed")


async def test_event_sends_each_recipient_once_and_is_marked_processed(
    pipeline: Pipeline, sender: MemorySender, placed: dict[str, Any]
) -> None:
    await pipeline.handle(support.inbound(placed))
    assert sorted(e.envelope_to for e in sender.sent) == [
        "jonas@bluepeak.example",
        "sara.holm@operator.example",
    ]
    assert await pipeline.ledger.is_processed(placed["source"], placed["id"])
    assert (
        counter(
            pipeline,
            "herald_notifications_total",
            notification="order_confirmation_new",
            outcome="sent",
        )
        == 2
    )


async def test_duplicate_event_has_no_effect(
    pipeline: Pipeline, sender: MemorySender, placed: dict[str, Any]
) -> None:
    assert await pipeline.handle(support.inbound(placed)) == "sent"
    assert await pipeline.handle(support.inbound(placed, redelivered=True)) == "duplicate"
    assert len(sender.sent) == 2
    assert counter(pipeline, "herald_events_duplicate_total", domain="orders") == 1


async def test_same_id_from_another_source_is_a_different_event(
    pipeline: Pipeline, sender: MemorySender, placed: dict[str, Any]
) -> None:
    await pipeline.handle(support.inbound(placed))
    placed["source"] = "/orders-service-eu"
    await pipeline.handle(support.inbound(placed))
    assert len(sender.sent) == 4


async def test_transient_failure_retries_only_the_unsent_recipient(
    pipeline: Pipeline, sender: MemorySender, placed: dict[str, Any]
) -> None:
    sender.fail_next(TransientSendError("451 try later", 451))
    with pytest.raises(TransientSendError):
        await pipeline.handle(support.inbound(placed))
    assert len(sender.sent) == 1
    assert not await pipeline.ledger.is_processed(placed["source"], placed["id"])
    # The broker redelivers the event: only the recipient that failed gets an email.
    await pipeline.handle(support.inbound(placed, redelivered=True))
    assert sorted(e.envelope_to for e in sender.sent) == [
        "jonas@bluepeak.example",
        "sara.holm@operator.example",
    ]
    assert await pipeline.ledger.is_processed(placed["source"], placed["id"])
    assert (
        counter(
            pipeline,
            "herald_notifications_total",
            notification="order_confirmation_new",
            outcome="retrying",
        )
        == 1
    )


async def test_permanent_failure_is_recorded_and_the_event_completes(
    pipeline: Pipeline, sender: MemorySender, placed: dict[str, Any]
) -> None:
    sender.fail_next(PermanentSendError("550 mailbox unavailable", 550))
    await pipeline.handle(support.inbound(placed))
    assert len(sender.sent) == 1
    assert await pipeline.ledger.is_processed(placed["source"], placed["id"])
    records = await pipeline.ledger.deliveries_of_event(placed["source"], placed["id"])
    assert sorted(r.status for r in records) == ["failed", "sent"]
    assert (
        counter(
            pipeline,
            "herald_notifications_total",
            notification="order_confirmation_new",
            outcome="failed",
        )
        == 1
    )


async def test_a_delivery_leased_by_another_worker_is_retried_later(
    pipeline: Pipeline, sender: MemorySender, placed: dict[str, Any]
) -> None:
    first = new_deliveries(pipeline, placed)[0]
    await pipeline.ledger.claim_many([first], pipeline.lease)
    with pytest.raises(DeliveryBusy):
        await pipeline.handle(support.inbound(placed))
    assert [e.envelope_to for e in sender.sent] == ["sara.holm@operator.example"]


async def test_event_without_recipients_is_counted(
    pipeline: Pipeline, sender: MemorySender
) -> None:
    document = load_example("orders.order.placed+branding")
    document["data"]["order"]["notify_contacts"] = []
    await pipeline.handle(support.inbound(document))
    assert (
        counter(
            pipeline,
            "herald_notifications_total",
            notification="branding_instructions",
            outcome="no_recipients",
        )
        == 1
    )
    assert await pipeline.ledger.is_processed(document["source"], document["id"])


async def test_undefined_type_is_ignored_and_counted(
    pipeline: Pipeline, sender: MemorySender, placed: dict[str, Any]
) -> None:
    placed["type"] = "orders.order.refunded"
    assert await pipeline.handle(support.inbound(placed)) == "ignored"
    assert sender.sent == []
    assert (
        counter(pipeline, "herald_events_ignored_total", domain="orders", reason="unknown_type")
        == 1
    )


async def test_bad_input_is_rejected_before_any_side_effect(
    pipeline: Pipeline, sender: MemorySender, placed: dict[str, Any]
) -> None:
    del placed["data"]["order"]["placed_by"]
    with pytest.raises(RejectedMessage) as caught:
        await pipeline.handle(support.inbound(placed))
    assert caught.value.reason == "schema_violation"
    assert sender.sent == []
    assert not await pipeline.ledger.is_processed(placed["source"], placed["id"])


class SlowSender(MemorySender):
    """Holds each send long enough for its claim's lease to lapse unless renewed."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    async def send(self, email: Any) -> Any:
        await asyncio.sleep(self.seconds)
        return await super().send(email)


async def test_leases_of_deliveries_in_progress_are_renewed_until_settled(
    ledger: MemoryLedger, placed: dict[str, Any]
) -> None:
    """A live worker's claims must not lapse mid-send (another replica would send again): the
    lease keeper extends them every third of a lease, and stops once they are settled."""
    lease = timedelta(seconds=0.3)
    pipeline = Pipeline(
        catalog=support.catalog(),
        directory={},
        renderer=support.renderer(),
        sender=SlowSender(1.2),
        ledger=ledger,
        observer=Metrics(),
        lease=lease,
    )
    handling = asyncio.create_task(pipeline.handle(support.inbound(placed)))
    try:
        await asyncio.sleep(0.8)  # well past the first lease (0.3 s)
        records = await ledger.deliveries_of_event(placed["source"], placed["id"])
        assert [record.status for record in records] == ["sending", "sending"]
        # Another worker claiming them now finds them still leased, not lapsed.
        others = await ledger.claim_many(new_deliveries(pipeline, placed), lease)
        assert [claim.state for claim in others.values()] == [ClaimState.BUSY] * 2
        assert await handling == "sent"
        records = await ledger.deliveries_of_event(placed["source"], placed["id"])
        assert [(record.status, record.attempts) for record in records] == [("sent", 1)] * 2
    finally:
        await pipeline.close()


async def test_without_an_observer_the_pipeline_works_silently(
    ledger: MemoryLedger, sender: MemorySender, placed: dict[str, Any]
) -> None:
    pipeline = Pipeline(
        catalog=support.catalog(),
        directory={},
        renderer=support.renderer(),
        sender=sender,
        ledger=ledger,
    )
    assert isinstance(pipeline.observer, NullObserver)
    assert await pipeline.handle(support.inbound(placed)) == "sent"
    assert len(sender.sent) == 2
    assert await pipeline.handle(support.inbound(placed, redelivered=True)) == "duplicate"


def test_acceptance_latency_is_observed_only_where_it_is_known() -> None:
    metrics = Metrics()
    metrics.accepted("orders", "order_placed", since_event=2.0, since_delivery=None)
    metrics.accepted("subscriptions", "plan_expiry_reminder", None, since_delivery=0.5)
    registry = metrics.registry
    event_to_accept = "herald_event_to_accept_seconds_count"
    delivery_to_accept = "herald_delivery_to_accept_seconds_count"
    assert support.sample_sum(registry, event_to_accept, domain="orders") == 1
    assert support.sample_sum(registry, delivery_to_accept, domain="orders") == 0
    assert support.sample_sum(registry, event_to_accept, domain="subscriptions") == 0
    assert support.sample_sum(registry, delivery_to_accept, domain="subscriptions") == 1
