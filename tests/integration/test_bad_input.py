"""EVENTS.md section 11 against the real broker: every row, the dead-letter copy's headers and
properties, and that bad input never stops the service."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from herald.schemas.examples import load_example
from herald.service.app import Service
from tests.conftest import SmtpServer
from tests.integration.conftest import Broker, metric, wait_for_metric

pytestmark = pytest.mark.integration


def placed(event_id: str) -> dict[str, Any]:
    document = load_example("orders.order.placed")
    document["id"] = event_id
    return document


async def assert_dead_lettered(
    broker: Broker,
    service: Service,
    message_id: str,
    reason: str,
    body: bytes,
    routing_key: str = "orders.order.placed",
) -> dict[str, Any]:
    copy = await broker.dead_letter(message_id)
    headers = dict(copy.headers or {})
    assert headers["x-reject-reason"] == reason
    assert headers["x-rejected-by"] == "herald"
    assert headers["x-original-exchange"] == "portal.events"
    assert headers["x-original-routing-key"] == routing_key
    assert 0 < len(headers["x-reject-detail"]) <= 1024
    assert datetime.fromisoformat(headers["x-rejected-at"]).tzinfo is not None
    assert copy.body == body, "the dead-letter copy keeps the original body bytes"
    assert copy.delivery_mode == 2
    await wait_for_metric(service, "herald_events_dead_lettered_total", 1, reason=reason)
    return headers


async def test_row1_body_too_large(service: Service, broker: Broker) -> None:
    body = b'{"pad": "' + b"x" * 262_144 + b'"}'
    await broker.publish(body, routing_key="orders.order.placed", message_id="too-large-1")
    await assert_dead_lettered(broker, service, "too-large-1", "body_too_large", body)


@pytest.mark.parametrize(
    "properties",
    [
        {"content_type": None},
        {"content_type": "application/json"},
        {"content_encoding": "gzip"},
    ],
)
async def test_row2_unsupported_content_type(
    service: Service, broker: Broker, properties: dict[str, Any]
) -> None:
    document = placed(f"ct-{properties}")
    body = json.dumps(document).encode()
    await broker.publish(
        body, routing_key=document["type"], message_id=document["id"], **properties
    )
    copy_headers = await assert_dead_lettered(
        broker, service, document["id"], "unsupported_content_type", body
    )
    assert copy_headers["x-reject-reason"] == "unsupported_content_type"


async def test_row3_malformed_json(service: Service, broker: Broker) -> None:
    body = b'{"specversion": "1.0", '
    await broker.publish(body, routing_key="orders.order.placed", message_id="malformed-1")
    await assert_dead_lettered(broker, service, "malformed-1", "malformed_json", body)


async def test_row4_envelope_violation(service: Service, broker: Broker) -> None:
    document = placed("envelope-1")
    document["time"] = "2025-06-02T10:15:30"  # no offset
    body = json.dumps(document).encode()
    await broker.publish(body, routing_key=document["type"], message_id=document["id"])
    headers = await assert_dead_lettered(broker, service, "envelope-1", "schema_violation", body)
    assert headers["x-reject-detail"].startswith("time")


async def test_row5_unknown_domain(service: Service, broker: Broker) -> None:
    document = placed("domain-1")
    document["type"] = "orders.Order.Placed"
    body = json.dumps(document).encode()
    await broker.publish(body, routing_key="orders.Order.Placed", message_id="domain-1")
    await assert_dead_lettered(
        broker, service, "domain-1", "unknown_event_type", body, routing_key="orders.Order.Placed"
    )


async def test_row6_routing_key_mismatch(service: Service, broker: Broker) -> None:
    document = placed("mismatch-1")
    body = json.dumps(document).encode()
    await broker.publish(body, routing_key="orders.order.submitted", message_id="mismatch-1")
    headers = await assert_dead_lettered(
        broker,
        service,
        "mismatch-1",
        "schema_violation",
        body,
        routing_key="orders.order.submitted",
    )
    assert "routing key" in headers["x-reject-detail"]


async def test_row6_message_id_differs_from_id(service: Service, broker: Broker) -> None:
    # aiormq gives every publish a message_id, so "absent" is covered by the unit tests.
    document = placed("id-in-body")
    body = json.dumps(document).encode()
    await broker.publish(body, routing_key=document["type"], message_id="id-on-the-wire")
    headers = await assert_dead_lettered(
        broker, service, "id-on-the-wire", "schema_violation", body
    )
    assert headers["x-reject-detail"] == "AMQP message_id differs from id"


async def test_row7_undefined_type_is_acked_not_dead_lettered(
    service: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    document = placed("refund-1")
    document["type"] = "orders.order.refunded"
    await broker.publish(document)
    await wait_for_metric(
        service, "herald_events_ignored_total", 1, domain="orders", reason="unknown_type"
    )
    assert await broker.queue_depth("herald.dead-letter") == 0
    assert smtp_server.received == []


async def test_row8_data_violation_names_the_location(service: Service, broker: Broker) -> None:
    document = placed("data-1")
    del document["data"]["order"]["lines"][0]["quantity"]
    body = json.dumps(document).encode()
    await broker.publish(body, routing_key=document["type"], message_id="data-1")
    headers = await assert_dead_lettered(broker, service, "data-1", "schema_violation", body)
    assert headers["x-reject-detail"] == "data.order.lines[0].quantity: Field required"


async def test_row9_duplicate_publish_sends_one_email(
    service: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    document = placed("dup-1")
    await broker.publish(document)
    await smtp_server.wait_for(2)
    await wait_for_metric(service, "herald_events_processed_total", 1, domain="orders")
    await broker.publish(document)  # the publisher's retransmit after a lost confirm
    await wait_for_metric(service, "herald_events_duplicate_total", 1, domain="orders")
    assert len(smtp_server.received) == 2
    assert metric(service, "herald_events_dead_lettered_total", reason="schema_violation") == 0


async def test_original_properties_and_headers_are_kept_on_the_copy(
    service: Service, broker: Broker
) -> None:
    body = b"[]"
    await broker.publish(
        body,
        routing_key="orders.order.placed",
        message_id="props-1",
        app_id="orders-service",
        correlation_id="corr-9",
        headers={"x-trace": "abc"},
    )
    copy = await broker.dead_letter("props-1")
    assert (copy.app_id, copy.correlation_id) == ("orders-service", "corr-9")
    assert copy.content_type == "application/cloudevents+json"
    assert (copy.headers or {})["x-trace"] == "abc"


async def test_service_keeps_working_after_bad_input(
    service: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    for index, body in enumerate([b"\xff", b"{}", b"[]", b"null"]):
        await broker.publish(body, routing_key="orders.order.placed", message_id=f"bad-{index}")
    await broker.publish(placed("good-after-bad"))
    await smtp_server.wait_for(2)
    assert service.ready
    await wait_for_metric(service, "herald_events_dead_lettered_total", 3, reason="malformed_json")
    await wait_for_metric(
        service, "herald_events_dead_lettered_total", 1, reason="schema_violation"
    )


async def test_bad_input_stays_queued_until_its_dead_letter_copy_is_confirmed(
    amqp_url: str, smtp_server: SmtpServer, tmp_path: Any, broker: Broker
) -> None:
    from herald.service.app import build_service
    from tests.integration.conftest import service_settings

    herald = await build_service(
        service_settings(amqp_url, smtp_server, tmp_path, requeue_base_seconds=0.05)
    )
    await herald.start()
    # Given a dead-letter exchange that routes nowhere (the copy comes back unroutable)
    dead_letters = await broker.channel.get_queue("herald.dead-letter")
    await dead_letters.unbind("herald.dlx", routing_key="")
    try:
        body = b"not json"
        await broker.publish(body, routing_key="orders.order.placed", message_id="unroutable-1")
        # When the copy cannot be confirmed, the original is requeued, never acked
        await wait_for_metric(herald, "herald_events_requeued_total", 2, domain="orders")
        assert metric(herald, "herald_events_dead_lettered_total", reason="malformed_json") == 0
        # Then, once the dead-letter queue is bound again, the message arrives there
        await dead_letters.bind("herald.dlx", routing_key="")
        await assert_dead_lettered(broker, herald, "unroutable-1", "malformed_json", body)
    finally:
        await herald.stop()
        await dead_letters.bind("herald.dlx", routing_key="")


async def test_address_with_trailing_newline_is_dead_lettered_and_nothing_is_sent(
    service: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    """`re.match` with `$` accepts a trailing newline; on the wire it split the To header and
    pushed Subject, Message-ID and the MIME headers into the body."""
    document = placed("newline-address-1")
    document["data"]["order"]["placed_by"]["email"] = "jonas@bluepeak.example\n"
    body = json.dumps(document).encode()
    await broker.publish(body, routing_key=document["type"], message_id=document["id"])
    headers = await assert_dead_lettered(broker, service, document["id"], "schema_violation", body)
    assert headers["x-reject-detail"] == "data.order.placed_by.email: must be an RFC 5322 addr-spec"
    # A valid event published after it is sent: had the first one been, it would be there too.
    await broker.publish(placed("newline-address-after"))
    received = await smtp_server.wait_for(2)
    await wait_for_metric(service, "herald_events_processed_total", 1, domain="orders")
    assert len(received) == 2
    assert all(b"jonas@bluepeak.example\r\n>" not in mail.content for mail in received)
    assert metric(service, "herald_events_processed_total", domain="orders") == 1


@pytest.mark.parametrize(
    ("original", "replacement"),
    [
        # A second value for a key: Python's parser silently kept the last one.
        (
            '"email": "jonas@bluepeak.example"',
            '"email": "jonas@bluepeak.example", "email": "mallory@evil.example"',
        ),
        # NaN and Infinity are not JSON; in an unknown field only the parser can refuse them.
        ('"storefront": "partner_portal"', '"storefront": "partner_portal", "score": NaN'),
        ('"storefront": "partner_portal"', '"storefront": "partner_portal", "score": -Infinity'),
    ],
    ids=["duplicate-key", "nan", "minus-infinity"],
)
async def test_row3_duplicate_keys_and_nan_are_malformed_json(
    service: Service, broker: Broker, smtp_server: SmtpServer, original: str, replacement: str
) -> None:
    document = placed("strict-json-1")
    text = json.dumps(document)
    assert original in text
    body = text.replace(original, replacement, 1).encode()
    await broker.publish(body, routing_key=document["type"], message_id=document["id"])
    headers = await assert_dead_lettered(broker, service, document["id"], "malformed_json", body)
    assert "jonas" not in headers["x-reject-detail"]
    assert "mallory" not in headers["x-reject-detail"]
    await broker.publish(placed("strict-json-after"))
    received = await smtp_server.wait_for(2)
    await wait_for_metric(service, "herald_events_processed_total", 1, domain="orders")
    assert len(received) == 2
    assert all("mallory@evil.example" not in mail.recipients for mail in received)
