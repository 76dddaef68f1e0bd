"""The replay tool's pure parts: the export format, dead-letter descriptions, filters,
re-validation, redaction and time parsing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer

from herald.consumers.dead_letter_file import decode_value, encode_value, from_line, to_line
from herald.consumers.dead_letters import StoredMessage, replayed_headers
from herald.schemas.examples import load_example
from herald.service.replay_cli import parse_time
from herald.tools.replay import (
    MAX_BODY_DEPTH,
    Filters,
    body_document,
    describe,
    read_export,
    redact,
    revalidate,
    shown_body,
)

CONTENT_TYPE = "application/cloudevents+json"
AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def dead_letter(
    document: dict[str, Any] | bytes,
    headers: dict[str, Any] | None = None,
    routing_key: str | None = None,
    **properties: Any,
) -> StoredMessage:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    key = routing_key or (document["type"] if isinstance(document, dict) else "orders.x")
    message_id = document["id"] if isinstance(document, dict) else None
    return StoredMessage(
        body=body,
        routing_key=key,
        headers=headers
        if headers is not None
        else {"x-reject-reason": "schema_violation", "x-rejected-at": AT.isoformat()},
        properties={"content_type": CONTENT_TYPE, "message_id": message_id, **properties},
    )


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(2**40),
        1.5,
        Decimal("12.50"),
        "text ünïcode",
        b"\x00\xff raw",
        AT,
        [1, "a", [b"x"]],
        {"count": 3, "nested": {"time": AT, "flag": False}},
    ],
)
def test_amqp_values_round_trip_with_their_types(value: Any) -> None:
    decoded = decode_value(json.loads(json.dumps(encode_value(value))))
    assert decoded == value and type(decoded) is type(value)


def test_a_line_round_trips_exactly() -> None:
    death = {"reason": "delivery_limit", "queue": "herald.orders", "time": AT, "count": 51}
    message = dead_letter(
        b"\xff not utf-8",
        headers={"x-death": [death], "x-first-death-reason": "delivery_limit"},
        routing_key="orders.order.placed",
        timestamp=AT,
        delivery_mode=2,
        priority=3,
    )
    line = to_line(message)
    again = from_line(line)
    assert again == message
    assert to_line(again) == line
    with pytest.raises(ValueError):
        from_line(json.dumps({"format": "something else"}))


def test_a_bad_export_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text(to_line(dead_letter(b"x")) + "\n{broken\n")
    with pytest.raises(ValueError, match=r"export\.jsonl:2"):
        read_export(path)


def test_original_routing_key_and_reason_sources() -> None:
    herald = dead_letter(
        b"x",
        {"x-original-routing-key": "orders.order.placed", "x-original-queue": "herald.orders"},
        "orders.order.placed",
    )
    assert herald.original_routing_key == "orders.order.placed"
    assert herald.original_queue == "herald.orders"
    # A copy from before x-original-queue: the queue of the key's domain
    older = dead_letter(b"x", {"x-original-routing-key": "users.user.invited"})
    assert older.original_queue == "herald.users"
    # An older copy of a replayed message: its key was the queue's name, the replay header
    # (written by Herald: it came through the default exchange) the key checked
    replayed_again = dead_letter(
        b"x",
        {
            "x-original-exchange": "",
            "x-original-routing-key": "herald.orders",
            "x-herald-original-routing-key": "orders.a",
        },
    )
    assert (replayed_again.original_routing_key, replayed_again.original_queue) == (
        "orders.a",
        "herald.orders",
    )
    broker = dead_letter(
        b"x",
        {
            "x-death": [
                {
                    "reason": "delivery_limit",
                    "queue": "herald.users",
                    "exchange": "portal.events",
                    "routing-keys": ["users.user.invited"],
                }
            ]
        },
        routing_key="users.user.invited",
    )
    assert broker.original_routing_key == "users.user.invited"
    assert broker.original_queue == "herald.users"
    assert broker.reason == "delivery_limit"
    assert dead_letter(b"x", {}).reason == "unknown"


DEATH = {
    "reason": "delivery_limit",
    "queue": "herald.orders",
    "exchange": "portal.events",
    "routing-keys": ["orders.quote.created"],
    "time": AT,
    "count": 1,
}


def test_a_publishers_headers_are_not_trusted() -> None:
    forged = {
        "x-herald-original-routing-key": "users.user.invited",
        "x-original-routing-key": "users.user.invited",
        "x-original-queue": "herald.users",
        "x-reject-reason": "schema_violation",
        "x-reject-detail": "made up",
        "x-rejected-at": (AT + timedelta(days=9)).isoformat(),
    }
    # The broker dead-lettered it: only x-death (and x-first-death-reason) count
    died = dead_letter(b"x", {**forged, "x-death": [DEATH]}, "orders.quote.created")
    assert died.original_routing_key == "orders.quote.created"
    assert died.original_queue == "herald.orders"
    assert (died.reason, died.detail, died.rejected_at) == ("delivery_limit", None, AT)
    # Through the default exchange (Herald's retry or replay path) the key is Herald's header
    retried = {**DEATH, "exchange": "", "routing-keys": ["herald.orders"]}
    died = dead_letter(b"x", {**forged, "x-death": [retried]}, "herald.orders")
    assert died.original_routing_key == "users.user.invited"
    assert died.original_queue == "herald.orders"  # the queue it died in, whatever the key
    # An older Herald copy kept a publisher's replay header: the key Herald checked wins
    legacy = dead_letter(
        b"x",
        {
            "x-herald-original-routing-key": "users.user.invited",
            "x-original-exchange": "portal.events",
            "x-original-routing-key": "orders.quote.created",
            "x-reject-reason": "schema_violation",
        },
    )
    assert legacy.original_routing_key == "orders.quote.created"
    assert legacy.original_queue == "herald.orders"
    # The most recent death decides the reason
    earlier = {**DEATH, "reason": "expired", "queue": "herald.orders.retry.5000ms"}
    twice = dead_letter(
        b"x", {"x-death": [DEATH, earlier], "x-first-death-reason": "expired"}, "orders.q"
    )
    assert twice.reason == "delivery_limit"


def test_requeue_goes_only_to_the_queue_a_message_died_in() -> None:
    document = load_example("orders.quote.created")
    # A valid event whose key and queue disagree stays
    mismatched = dead_letter(
        document,
        {"x-death": [{**DEATH, "queue": "herald.users"}]},
        routing_key="orders.quote.created",
    )
    verdict = revalidate(describe(mismatched, 1))
    assert (verdict.outcome, verdict.reason) == ("invalid", "schema_violation")
    assert "herald.users" in (verdict.detail or "")
    # A forged key is re-validated as the key Herald checked
    forged = dead_letter(
        load_example("users.user.invited"),
        {
            "x-original-routing-key": "orders.quote.created",
            "x-original-queue": "herald.orders",
            "x-herald-original-routing-key": "users.user.invited",
        },
    )
    verdict = revalidate(describe(forged, 1))
    assert (verdict.outcome, verdict.reason) == ("invalid", "schema_violation")
    assert "routing key" in (verdict.detail or "")


def test_replayed_headers_count_up_and_keep_history() -> None:
    message = dead_letter(b"x", {"x-reject-reason": "schema_violation"}, "orders.order.placed")
    first = replayed_headers(message, by="sre")
    assert first["x-herald-replay-count"] == 1
    assert first["x-herald-original-routing-key"] == "orders.order.placed"
    assert first["x-reject-reason"] == "schema_violation"
    # Dead-lettered again by Herald (as a version before x-original-queue wrote it)
    again = {**first, "x-original-exchange": "", "x-original-routing-key": "herald.orders"}
    second = replayed_headers(StoredMessage(b"x", "herald.orders", again, {}), by="sre")
    assert second["x-herald-replay-count"] == 2
    assert second["x-herald-original-routing-key"] == "orders.order.placed"


def test_description_and_filters() -> None:
    document = load_example("users.user.invited")
    entry = describe(dead_letter(document), position=1)
    assert (entry.event_id, entry.event_type, entry.source) == (
        document["id"],
        "users.user.invited",
        document["source"],
    )
    assert entry.rejected_at == AT and entry.reason == "schema_violation"
    assert Filters().matches(entry)
    assert Filters(reasons=("schema_violation", "x")).matches(entry)
    assert not Filters(reasons=("malformed_json",)).matches(entry)
    assert Filters(type_glob="users.*").matches(entry)
    assert not Filters(type_glob="orders.*").matches(entry)
    assert Filters(source_glob=document["source"][:3] + "*").matches(entry)
    assert not Filters(source_glob="/nope*").matches(entry)
    assert Filters(since=AT - timedelta(seconds=1), until=AT).matches(entry)
    assert not Filters(since=AT + timedelta(seconds=1)).matches(entry)
    assert not Filters(until=AT - timedelta(seconds=1)).matches(entry)
    assert Filters(ids=(document["id"],)).matches(entry)
    assert not Filters(ids=("other",)).matches(entry)
    raw = describe(dead_letter(b"\xff", {}), position=2)
    assert raw.source is None and raw.rejected_at is None
    assert not Filters(source_glob="*").matches(raw)
    assert not Filters(since=AT).matches(raw)
    assert Filters(since=AT).describe() == {"since": AT.isoformat()}


def test_revalidation_uses_the_consumers_checks() -> None:
    valid = describe(dead_letter(load_example("orders.quote.created")), 1)
    assert revalidate(valid).outcome == "valid" and revalidate(valid).domain == "orders"
    broken = load_example("orders.order.placed")
    broken["data"].pop("order")
    verdict = revalidate(describe(dead_letter(broken), 1))
    assert (verdict.outcome, verdict.reason) == ("invalid", "schema_violation")
    assert "data.order" in (verdict.detail or "")
    undefined = load_example("orders.quote.created")
    undefined["type"] = "orders.order.refunded"
    assert revalidate(describe(dead_letter(undefined), 1)).outcome == "ignored"
    text = revalidate(
        describe(dead_letter(load_example("orders.quote.created"), content_type="text/plain"), 1)
    )
    assert text.reason == "unsupported_content_type"


def test_show_redacts_secret_links_and_credentials() -> None:
    document = {"data": {"action_url": "https://x/?token=1", "items": [{"Password": "p"}]}}
    assert redact(document) == {
        "data": {"action_url": "<redacted>", "items": [{"Password": "<redacted>"}]}
    }
    shown = shown_body(dead_letter(load_example("interop.teams.subscription_created")))
    assert '"action_url": "<redacted>"' in shown and "token=" not in shown
    assert shown_body(dead_letter(b"\xffraw")) == "\\xffraw"


DEEP = {
    "object": lambda n: b'{"a":' * n + b"1" + b"}" * n,
    "array": lambda n: b"[" * n + b"]" * n,
    "unclosed": lambda n: b"[" * n,
    "in-data": lambda n: b'{"id":"e1","source":"/s","data":' + b"[" * n + b"]" * n + b"}",
}


@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize("shape", sorted(DEEP))
def test_a_deep_body_is_opaque_and_never_raises(shape: str, depth: int) -> None:
    body = DEEP[shape](depth)
    message = dead_letter(body, {"x-reject-reason": "malformed_json"}, "orders.x")
    assert body_document(body) is None
    entry = describe(message, 1)
    assert entry.source is None and entry.reason == "malformed_json"
    assert Filters(type_glob="orders.*").matches(entry)
    assert not Filters(source_glob="*").matches(entry)
    shown = shown_body(message)
    assert shown.startswith(body[:100].decode()) and len(shown) < 5_000
    assert f"of {len(body)} bytes shown" in shown and "raw text" in shown
    verdict = revalidate(entry)
    too_large = len(body) > 262_144
    assert (verdict.outcome, verdict.reason) == (
        "invalid",
        "body_too_large" if too_large else "malformed_json",
    )


def test_nesting_is_counted_outside_strings_only() -> None:
    inner = MAX_BODY_DEPTH - 2  # inside the top-level object and `data`
    nested = json.loads(b"[" * inner + b"]" * inner)
    document = {"id": "e1", "data": {"text": "[{" * 500, "nested": nested}}
    assert body_document(json.dumps(document).encode()) == document
    over = {"id": "e1", "data": {"text": "}]" * 500, "nested": [nested]}}
    assert body_document(json.dumps(over).encode()) is None
    assert body_document(json.dumps(over).encode().replace(b"}]", b"  ")) is None
    escaped = {"id": 'a \\" [[[', "x": [1]}
    assert body_document(json.dumps(escaped).encode()) == escaped
    assert body_document(b"[1]") is None and body_document(b"\xff") is None


def test_redaction_and_headers_are_bounded() -> None:
    value: Any = "leaf"
    for _ in range(5_000):
        value = [value]
    str(redact(value))  # no RecursionError


def test_parse_time() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert parse_time("2h", now) == now - timedelta(hours=2)
    assert parse_time("30m", now) == now - timedelta(minutes=30)
    assert parse_time("7d", now) == now - timedelta(days=7)
    assert parse_time("2026-11-30T08:00:00", now) == datetime(2026, 11, 30, 8, tzinfo=UTC)
    assert parse_time("2026-11-30T08:00:00+01:00", now) == datetime(2026, 11, 30, 7, tzinfo=UTC)
    assert parse_time(None) is None
    with pytest.raises(typer.BadParameter):
        parse_time("yesterday")
