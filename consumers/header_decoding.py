"""A nesting limit for the AMQP header tables Herald reads.

pamqp (under aiormq) decodes field tables and arrays recursively, inside the connection's reader:
a header nested a few thousand levels deep (35 KB, well within a frame) raises RecursionError
there, the connection dies, the broker redelivers the message to the next connection, and the
domain stalls until the queue's delivery limit. `install()` wraps pamqp's table and array
decoders so that a table or array nested deeper than `MAX_NESTING` is skipped by its length
prefix and read as `TOO_DEEP`, a value no encoder accepts: the consumer then dead-letters the
message as `headers_too_large` (see `consumers.copies`), like any other oversized header.

pamqp has no setting for this; the wrappers keep its functions and signatures, and only count.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from typing import Any

from pamqp import decode

MAX_NESTING = 64


class _TooDeep:
    """The value of a table or array nested past the limit (encodes as nothing: TypeError)."""

    def __repr__(self) -> str:
        return "<nested too deep>"


TOO_DEEP: Any = _TooDeep()
_local = threading.local()
_LENGTH = struct.Struct(">I")


def _limited(
    decoder: Callable[[bytes], tuple[int, Any]],
) -> Callable[[bytes], tuple[int, Any]]:
    def decode_nested(value: bytes) -> tuple[int, Any]:
        depth = getattr(_local, "depth", 0)
        if depth >= MAX_NESTING:
            if len(value) < 4:
                raise ValueError("Could not unpack data")
            (length,) = _LENGTH.unpack_from(value)
            if 4 + length > len(value):
                raise ValueError("Field length exceeds available data")
            return 4 + length, TOO_DEEP
        _local.depth = depth + 1
        try:
            return decoder(value)
        finally:
            _local.depth = depth

    decode_nested.herald_limited = True  # type: ignore[attr-defined]
    return decode_nested


def install() -> None:
    """Wrap pamqp's nested decoders once (idempotent)."""
    for code in (b"F", b"A"):
        current = decode.TABLE_MAPPING[code]
        if not getattr(current, "herald_limited", False):
            decode.TABLE_MAPPING[code] = _limited(current)


install()
