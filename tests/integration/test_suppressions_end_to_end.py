"""The suppression loop end to end, on the real broker, ledger and an SMTP server that refuses
one mailbox with `550 5.1.1` at RCPT: the first event records that delivery `failed` and a
`hard_bounce` suppression; the next event mails everyone else and records `blocked` for it;
after `herald suppressions remove` (the CLI, as a subprocess) the event after that mails it
again. The accounting identity holds after each event."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from herald.ledger.records import DeliveryRecord
from herald.schemas.examples import load_example
from herald.service.app import Service
from tests.conftest import SmtpServer
from tests.integration.conftest import Broker, metric
from tests.support import herald_command

pytestmark = pytest.mark.integration

GONE = "sara.holm@operator.example"
KEPT = "jonas@bluepeak.example"
OUTCOMES = (
    "sent",
    "blocked",
    "suppressed",
    "no_recipients",
    "failed",
    "dead_lettered",
    "ignored",
    "duplicate",
    "retrying",
    "requeued",
    "interrupted",
)


async def herald_cli(database_url: str, *args: str) -> tuple[int, str, str]:
    return await herald_command(*args, HERALD_DATABASE_URL=database_url, HERALD_OPERATOR="sre-test")


async def publish_and_settle(
    service: Service, broker: Broker, example: str = "orders.order.placed"
) -> dict[str, Any]:
    """Publish the example event `example` under a new id (orders.order.placed: two
    recipients), wait until it is processed and every delivery taken is accounted for, check
    the identity, and return the event. (Counted over all events: one left in a retry queue by
    an earlier test may arrive meanwhile.)"""
    document: dict[str, Any] = load_example(example)
    document["id"] = str(uuid.uuid4())
    await broker.publish(document)
    deadline = asyncio.get_running_loop().time() + 20
    while not await service.ledger.is_processed(document["source"], document["id"]):
        assert asyncio.get_running_loop().time() < deadline, "the event was not processed"
        await asyncio.sleep(0.02)
    while True:
        received = metric(service, "herald_events_received_total")
        accounted = sum(
            metric(service, "herald_events_accounted_total", outcome=outcome)
            for outcome in OUTCOMES
        )
        if received == accounted or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.02)
    assert received == accounted == metric(service, "herald_events_accounted_total")
    return document


async def deliveries(service: Service, document: dict[str, Any]) -> dict[str, DeliveryRecord]:
    records = await service.ledger.deliveries_of_event(document["source"], document["id"])
    return {record.recipient: record for record in records}


async def test_a_hard_bounce_blocks_the_address_until_it_is_removed(
    service: Service, broker: Broker, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path}/herald.db"
    smtp_server.refused_recipients[GONE] = "550 5.1.1 <sara.holm>: Recipient address rejected"

    first = await publish_and_settle(service, broker)
    assert metric(service, "herald_events_accounted_total", outcome="failed") >= 1
    records = await deliveries(service, first)
    assert (records[GONE].status, records[KEPT].status) == ("failed", "sent")
    code, stdout, stderr = await herald_cli(
        database_url, "suppressions", "list", "--address", GONE, "--format", "json"
    )
    assert code == 0, stderr
    (suppression,) = json.loads(stdout)
    assert (suppression["reason"], suppression["source"]) == ("hard_bounce", "smtp")
    assert suppression["evidence"].startswith("550 5.1.1")

    second = await publish_and_settle(service, broker)
    assert metric(service, "herald_events_accounted_total", outcome="sent") >= 1
    assert metric(service, "herald_notifications_total", outcome="blocked") >= 1
    records = await deliveries(service, second)
    assert (records[GONE].status, records[KEPT].status) == ("blocked", "sent")
    code, stdout, stderr = await herald_cli(
        database_url, "deliveries", "find", "--event-id", second["id"], "--format", "json"
    )
    assert code == 0, stderr
    (blocked,) = [found for found in json.loads(stdout) if found["status"] == "blocked"]
    assert blocked["suppression"]["reason"] == "hard_bounce"

    code, stdout, stderr = await herald_cli(
        database_url, "suppressions", "remove", GONE, "--by", "support", "--note", "fixed"
    )
    assert code == 0, stderr
    del smtp_server.refused_recipients[GONE]  # the mailbox exists again
    # GONE never got past RCPT so far: refused once, then blocked before the server.
    assert GONE not in {r for item in smtp_server.received for r in item.recipients}

    third = await publish_and_settle(service, broker)
    records = await deliveries(service, third)
    assert (records[GONE].status, records[KEPT].status) == ("sent", "sent")
    assert GONE in {r for item in smtp_server.received for r in item.recipients}
