"""The nesting limit on AMQP header tables (consumers.header_decoding)."""

from __future__ import annotations

import sys
from typing import Any

from pamqp import decode, encode

from herald.consumers.copies import header_bytes
from herald.consumers.header_decoding import MAX_NESTING, TOO_DEEP


def nested(depth: int) -> dict[str, Any]:
    table: dict[str, Any] = {}
    inner = table
    for _ in range(depth):
        inner["a"] = {}
        inner = inner["a"]
    return table


def encoded(headers: dict[str, Any]) -> bytes:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(50_000)
    try:
        return encode.field_table(headers)
    finally:
        sys.setrecursionlimit(limit)


def test_a_table_nested_past_the_limit_is_skipped_and_the_rest_still_read() -> None:
    data = encoded({"x-deep": nested(5_000), "x-after": "kept", "x-list": [[[1]]]})
    consumed, headers = decode.field_table(data)
    assert consumed == len(data)
    assert headers["x-after"] == "kept"
    assert headers["x-list"] == [[[1]]]
    inner = headers["x-deep"]
    for _ in range(MAX_NESTING):
        inner = inner["a"]
    assert inner is TOO_DEEP
    assert header_bytes(headers) is None  # cannot be encoded again: dead-lettered


def test_arrays_are_limited_too() -> None:
    deep: list[Any] = []
    inner = deep
    for _ in range(3_000):
        inner.append([])
        inner = inner[0]
    data = encoded({"x-deep": deep})
    _, headers = decode.field_table(data)
    assert header_bytes(headers) is None


def test_tables_within_the_limit_decode_unchanged() -> None:
    headers = {"x-ok": nested(MAX_NESTING - 1), "traceparent": "00-abc"}
    assert decode.field_table(encoded(headers))[1] == headers
