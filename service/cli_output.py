"""How the operator commands speak: an error is one plain line on stderr and an exit code, JSON
is one document on stdout and nothing else, and every time is ISO 8601 with a `T` and an
offset (`2026-12-07T13:05:00+00:00`), in tables and JSON alike."""

from __future__ import annotations

import base64
import json
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NoReturn

import typer

FORMATS = ("table", "json")


def fail(message: str, code: int = 2) -> NoReturn:
    """End the command with `herald: <message>` on one line (never wrapped to the terminal's
    width, so it can be searched for and pasted) and exit `code`: 2 for what the operator
    asked wrongly, 1 for what was not found or could not be reached."""
    typer.echo(f"herald: {' '.join(message.split())}", err=True)
    raise typer.Exit(code=code)


def warn(message: str) -> None:
    """One `herald: warning: ...` line on stderr; the command goes on."""
    typer.echo(f"herald: warning: {' '.join(message.split())}", err=True)


def check_format(value: str) -> str:
    """The `--format` asked for, lower-cased: `table` or `json` (exit 2 otherwise)."""
    chosen = value.lower()
    if chosen not in FORMATS:
        fail(f"--format is table or json, not {value!r}")
    return chosen


def iso(value: datetime | date | None, timespec: str = "seconds") -> str:
    """`2026-12-07T13:05:00+00:00`; a time without a zone is UTC (the ledger's); a date as
    `2026-12-07`; None as the empty string (an empty table cell)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.isoformat(timespec=timespec)
    return value.isoformat()


def json_default(value: Any) -> Any:
    """What `json.dumps` cannot write by itself: times in ISO 8601 (full precision), AMQP
    decimals as strings, byte strings as UTF-8 text when they are, else base64."""
    if isinstance(value, datetime | date):
        return iso(value, "auto")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(raw).decode("ascii")}
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def print_json(document: Any) -> None:
    """`document` as indented JSON on stdout, and nothing else there."""
    sys.stdout.write(
        json.dumps(document, indent=2, ensure_ascii=False, default=json_default) + "\n"
    )
    sys.stdout.flush()
