"""EVENTS.md section 11, checks 1 to 8, in order, with the contract's reason codes."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from herald.errors import RejectedMessage
from herald.schemas.decode import MAX_BODY_BYTES, decode
from herald.schemas.envelope import Event, IgnoredEvent
from herald.schemas.examples import load_example
from tests.support import inbound


@pytest.fixture
def document() -> dict[str, Any]:
    return load_example("orders.order.placed")


def reason_of(message: Any) -> tuple[str, str]:
    with pytest.raises(RejectedMessage) as caught:
        decode(message)
    return caught.value.reason, caught.value.detail


def test_valid_event_decodes_to_typed_data(document: dict[str, Any]) -> None:
    event = decode(inbound(document))
    assert isinstance(event, Event)
    assert event.domain == "orders"
    assert event.data.order.lines[0].quantity == 25  # type: ignore[attr-defined]
    assert event.time.utcoffset() is not None


def test_row1_body_too_large_is_not_parsed() -> None:
    body = b"{" + b" " * MAX_BODY_BYTES + b"}"
    assert reason_of(inbound(body))[0] == "body_too_large"


def test_row1_exact_limit_is_not_too_large(document: dict[str, Any]) -> None:
    body = json.dumps(document).encode()
    padded = body[:-1] + b" " * (MAX_BODY_BYTES - len(body)) + b"}"
    assert len(padded) == MAX_BODY_BYTES
    assert isinstance(
        decode(inbound(padded, routing_key=document["type"], message_id=document["id"])), Event
    )


@pytest.mark.parametrize(
    ("content_type", "content_encoding"),
    [
        (None, None),
        ("application/json", None),
        ("text/plain", None),
        ("application/cloudevents+json", "gzip"),
    ],
)
def test_row2_content_type(
    document: dict[str, Any], content_type: str | None, content_encoding: str | None
) -> None:
    message = inbound(document, content_type=content_type, content_encoding=content_encoding)
    assert reason_of(message)[0] == "unsupported_content_type"


@pytest.mark.parametrize(
    "content_type",
    ["application/cloudevents+json; charset=utf-8", "Application/CloudEvents+JSON"],
)
def test_row2_media_type_is_case_insensitive_and_parameters_ignored(
    document: dict[str, Any], content_type: str
) -> None:
    assert isinstance(decode(inbound(document, content_type=content_type)), Event)


@pytest.mark.parametrize(
    "body", [b"\xff\xfe{}", b"{not json", b"[1, 2]", b'"text"', b"null", b"1" * 5000]
)
def test_row3_malformed_json(body: bytes) -> None:
    assert reason_of(inbound(body))[0] == "malformed_json"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_row3_nan_and_infinity_are_malformed_json(document: dict[str, Any], constant: str) -> None:
    # In an unknown field, which the schema ignores: only the parser can refuse it.
    document["data"]["score"] = float(constant)
    body = json.dumps(document).encode()
    assert f'"score": {constant}'.encode() in body
    reason, detail = reason_of(inbound(body, message_id=document["id"]))
    assert reason == "malformed_json"
    assert detail == "body is not valid JSON: NaN and Infinity are not JSON numbers"


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (b'{"a": 1, "a": 2}', "(root)"),
        (b'{"a": {"b": 1, "c": {}, "b": 1}}', "a"),
        (b'{"a": [{"x": 1}, {"y": 1, "y": 2}]}', "a[1]"),
        (b'{"a": {"jonas@bluepeak.example": {"k": 1, "k": 1}}}', "a.?"),
    ],
)
def test_row3_duplicate_keys_are_malformed_json(body: bytes, location: str) -> None:
    reason, detail = reason_of(inbound(body))
    assert reason == "malformed_json"
    assert detail == f"body is not valid JSON: duplicate key at {location}"


def test_row3_duplicate_key_in_an_event_is_not_silently_resolved(
    document: dict[str, Any],
) -> None:
    text = json.dumps(document)
    body = text.replace(
        '"email": "jonas@bluepeak.example"',
        '"email": "jonas@bluepeak.example", "email": "mallory@evil.example"',
        1,
    ).encode()
    assert b"mallory" in body
    reason, detail = reason_of(inbound(body, message_id=document["id"]))
    assert reason == "malformed_json"
    assert detail == "body is not valid JSON: duplicate key at data.order.placed_by"
    assert "jonas" not in detail and "mallory" not in detail


@pytest.mark.parametrize(
    ("mutate", "location"),
    [
        (lambda d: d.pop("specversion"), "specversion"),
        (lambda d: d.update(specversion="0.3"), "specversion"),
        (lambda d: d.update(id=None), "id"),
        (lambda d: d.update(time="2025-06-02T10:15:30"), "time"),
        (lambda d: d.update(time="yesterday"), "time"),
        (lambda d: d.update(datacontenttype="text/json"), "datacontenttype"),
        (lambda d: d.update(data=[1]), "data"),
        (lambda d: d.pop("source"), "source"),
        (lambda d: d.update(id="é" * 3), "id"),
    ],
)
def test_row4_envelope_violations(document: dict[str, Any], mutate: Any, location: str) -> None:
    mutate(document)
    reason, detail = reason_of(inbound(document))
    assert reason == "schema_violation"
    assert detail.startswith(location)


@pytest.mark.parametrize(
    "event_type", ["Orders.Order.Placed", "orders.placed", "billing.invoice.sent"]
)
def test_row5_unknown_event_type(document: dict[str, Any], event_type: str) -> None:
    document["type"] = event_type
    assert reason_of(inbound(document, routing_key=event_type))[0] == "unknown_event_type"


def test_row5_comes_before_row6(document: dict[str, Any]) -> None:
    document["type"] = "billing.invoice.sent"
    assert (
        reason_of(inbound(document, routing_key="orders.order.placed"))[0] == "unknown_event_type"
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"routing_key": "orders.order.submitted"},
        {"message_id": None},
        {"message_id": "another-id"},
    ],
)
def test_row6_transport_mismatch(document: dict[str, Any], overrides: dict[str, Any]) -> None:
    reason, detail = reason_of(inbound(document, **overrides))
    assert reason == "schema_violation"
    assert "AMQP" in detail


def test_row7_undefined_type_in_known_domain_is_ignored(document: dict[str, Any]) -> None:
    document["type"] = "orders.order.refunded"
    document["data"] = {"anything": True}
    result = decode(inbound(document))
    assert isinstance(result, IgnoredEvent)
    assert result.domain == "orders"


def test_row7_comes_before_data_validation(document: dict[str, Any]) -> None:
    document["type"] = "orders.order.refunded"
    document["data"] = {}
    assert isinstance(decode(inbound(document)), IgnoredEvent)


def _lines(document: dict[str, Any]) -> Any:
    return document["data"]["order"]["lines"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: _lines(d)[0].pop("quantity"), "data.order.lines[0].quantity: Field required"),
        (lambda d: _lines(d)[0].update(quantity="25"), "data.order.lines[0].quantity"),
        (lambda d: _lines(d)[0].update(quantity=-1), "data.order.lines[0].quantity"),
        (
            lambda d: _lines(d)[0].update(quantity=None),
            "data.order.lines[0].quantity: Field required",
        ),
        (lambda d: d["data"]["order"].update(storefront="shop"), "data.order.storefront"),
        (lambda d: d["data"]["order"].update(lines=[]), "data.order.lines"),
        (lambda d: _lines(d)[0].pop("plan_id"), "plan_id: required when kind is license_plan"),
        (lambda d: _lines(d)[0]["price"].update(amount=6250.0), "data.order.lines[0].price.amount"),
        (
            lambda d: _lines(d)[0]["price"].update(amount="6,250"),
            "data.order.lines[0].price.amount",
        ),
        (
            lambda d: _lines(d)[0]["price"].update(currency="eur"),
            "data.order.lines[0].price.currency",
        ),
        (lambda d: d["data"]["order"].update(placed_at="2025-06-02"), "data.order.placed_at"),
        (lambda d: d["data"]["order"].update(url="http://insecure.example/x"), "data.order.url"),
        (
            lambda d: d["data"]["order"]["placed_by"].update(email="not an address"),
            "data.order.placed_by.email",
        ),
        (lambda d: d["data"].pop("distributor"), "distributor: required"),
        (
            lambda d: d["data"]["customer"].update(parent_id="org-other"),
            "customer.parent_id must equal partner.id",
        ),
        (
            lambda d: d["data"]["distributor"].update(id="org-other"),
            "distributor.id must equal partner.parent_id",
        ),
        (lambda d: d["data"]["partner"].update(kind="end_customer"), "partner.kind"),
        (
            lambda d: d["data"]["customer"].update(kind="reseller"),
            "customer.kind must be end_customer",
        ),
    ],
)
def test_row8_data_violations(document: dict[str, Any], mutate: Any, expected: str) -> None:
    mutate(document)
    reason, detail = reason_of(inbound(document))
    assert reason == "schema_violation"
    assert expected in detail


def test_row8_distributor_must_be_absent_for_a_reseller_without_parent(
    document: dict[str, Any],
) -> None:
    del document["data"]["partner"]["parent_id"]
    reason, detail = reason_of(inbound(document))
    assert (reason, "distributor: must be absent" in detail) == ("schema_violation", True)


def test_unknown_fields_are_ignored_at_every_level(document: dict[str, Any]) -> None:
    document["extension_attr"] = "x"
    document["data"]["new_top_level"] = {"a": 1}
    _lines(document)[0]["future_field"] = [1, 2]
    document["data"]["customer"]["contact"]["pronouns"] = "she/her"
    assert isinstance(decode(inbound(document)), Event)


def test_null_optional_field_means_absent(document: dict[str, Any]) -> None:
    document["data"]["order"]["total"] = None
    document["data"]["customer"]["contact"]["locale"] = None
    event = decode(inbound(document))
    assert isinstance(event, Event)
    assert event.data.order.total is None  # type: ignore[attr-defined]
    assert event.data.customer.contact.locale == "en"  # type: ignore[attr-defined]


def test_detail_never_contains_field_values(document: dict[str, Any]) -> None:
    secret = "https://portal.example/secret-token-abc"
    document["data"]["order"]["url"] = secret.replace("https", "http")
    document["data"]["order"]["placed_by"]["email"] = "leak me@example.com"
    _, detail = reason_of(inbound(document))
    assert "secret-token" not in detail and "leak me" not in detail


def test_detail_is_bounded(document: dict[str, Any]) -> None:
    line = _lines(document)[0]
    document["data"]["order"]["lines"] = [
        copy.deepcopy(line) | {"quantity": "x"} for _ in range(200)
    ]
    _, detail = reason_of(inbound(document))
    assert len(detail) <= 1024


def test_oversized_strings_are_violations(document: dict[str, Any]) -> None:
    document["data"]["customer"]["name"] = "x" * 10_000
    assert reason_of(inbound(document))[0] == "schema_violation"
