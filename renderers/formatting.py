"""Display formats used by templates: dates in the UTC calendar, money, enum values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def format_date(value: datetime | None) -> str:
    """`1 October 2026`: the timestamp's date in the UTC calendar (NOTIFICATIONS.md 1)."""
    if value is None:
        return ""
    utc = value.astimezone(UTC)
    return f"{utc.day} {utc.strftime('%B')} {utc.year}"


def format_datetime(value: datetime | None) -> str:
    """`2 June 2025, 10:15 UTC`."""
    if value is None:
        return ""
    utc = value.astimezone(UTC)
    return f"{format_date(utc)}, {utc:%H:%M} UTC"


def format_money(value: Any) -> str:
    """`6,250.00 EUR` from a Money object; the decimal string is never turned into a float."""
    if value is None:
        return ""
    amount: str = value.amount
    sign = "-" if amount.startswith("-") else ""
    whole, _, fraction = amount.lstrip("-").partition(".")
    grouped = f"{int(whole):,}"
    return f"{sign}{grouped}.{fraction.ljust(2, '0')} {value.currency}"


def humanize(value: str | None) -> str:
    """`change_billing_period` -> `change billing period`."""
    return "" if value is None else value.replace("_", " ")
