"""Every validator matches the whole value: a trailing newline (which `re.match` with `$`
accepts) never passes, and an address with a line break never reaches a header."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from herald.errors import RejectedMessage
from herald.renderers.branding import Colour
from herald.renderers.mime import encode_address
from herald.schemas.decode import decode
from herald.schemas.envelope import EventId, Source
from herald.schemas.examples import load_example
from herald.schemas.scalars import Currency, DecimalString, Email, Locale, Timestamp
from tests.support import inbound

VALID: list[tuple[Any, str]] = [
    (Email, "jonas@bluepeak.example"),
    (Timestamp, "2025-06-02T10:15:30Z"),
    (Currency, "EUR"),
    (DecimalString, "1499.00"),
    (Locale, "de-AT"),
    (EventId, "evt-1"),
    (Source, "/orders"),
    (Colour, "#0f766e"),
]


@pytest.mark.parametrize(("kind", "value"), VALID, ids=lambda item: str(item)[:30])
@pytest.mark.parametrize("suffix", ["\n", "\r\n", "\r", "\n\n"])
def test_a_trailing_line_break_is_rejected(kind: Any, value: str, suffix: str) -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(kind)
    adapter.validate_python(value)  # the value itself is valid
    with pytest.raises(ValidationError):
        adapter.validate_python(value + suffix)


@pytest.mark.parametrize("suffix", ["\n", "\r\n"])
def test_placed_by_email_with_trailing_newline_is_a_schema_violation(suffix: str) -> None:
    document = load_example("orders.order.placed")
    document["data"]["order"]["placed_by"]["email"] = "jonas@bluepeak.example" + suffix
    with pytest.raises(RejectedMessage) as caught:
        decode(inbound(document))
    assert caught.value.reason == "schema_violation"
    assert caught.value.detail == "data.order.placed_by.email: must be an RFC 5322 addr-spec"


def test_time_with_trailing_newline_is_a_schema_violation() -> None:
    document = load_example("orders.order.placed")
    document["time"] = document["time"] + "\n"
    with pytest.raises(RejectedMessage) as caught:
        decode(inbound(document))
    assert caught.value.reason == "schema_violation"
    assert caught.value.detail.startswith("time:")


def test_type_with_trailing_newline_is_not_well_formed() -> None:
    document = load_example("orders.order.placed")
    document["type"] = "orders.order.placed\n"
    with pytest.raises(RejectedMessage) as caught:
        decode(inbound(document, routing_key=document["type"]))
    assert caught.value.reason == "unknown_event_type"


@pytest.mark.parametrize(
    "address", ["jonas@bluepeak.example\n", "jonas@bluepeak.example\r\nBcc: x@y.example", "a\x00@b"]
)
def test_an_address_with_control_characters_never_reaches_a_header(address: str) -> None:
    with pytest.raises(ValueError, match="control"):
        encode_address("Jonas", address, "To")
