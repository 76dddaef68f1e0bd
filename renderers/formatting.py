"""Display formats used by templates, in the recipient's locale (Babel): dates in the UTC
calendar, date-times, money, numbers, enum values.

English (`en`) keeps the contract's forms (`1 October 2026`, `6,250.00 EUR`) on a fast path;
every other locale is formatted by Babel's CLDR data (`1. Oktober 2026`, `6.250,00 EUR`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from babel.dates import format_date as babel_date
from babel.dates import format_time as babel_time
from babel.numbers import format_currency, format_decimal

from herald.renderers.locales import DEFAULT_LOCALE, babel_locale

# The currency's ISO code after the amount, as the contract writes it, in every locale.
_MONEY_PATTERN = "#,##0.00\u00a0¤¤"


def format_date(value: datetime | None, locale: str = DEFAULT_LOCALE) -> str:
    """`1 October 2026` (en), `1. Oktober 2026` (de): the timestamp's date in the UTC calendar
    (NOTIFICATIONS.md 1)."""
    if value is None:
        return ""
    utc = value.astimezone(UTC)
    if locale == DEFAULT_LOCALE:
        return f"{utc.day} {utc.strftime('%B')} {utc.year}"
    return _long_date(utc.date(), locale)


def format_datetime(value: datetime | None, locale: str = DEFAULT_LOCALE) -> str:
    """`2 June 2025, 10:15 UTC` (en), `2. Juni 2025, 10:15 UTC` (de)."""
    if value is None:
        return ""
    utc = value.astimezone(UTC)
    if locale == DEFAULT_LOCALE:
        return f"{format_date(utc)}, {utc:%H:%M} UTC"
    time = babel_time(utc.timetz(), format="HH:mm", tzinfo=UTC, locale=babel_locale(locale))
    return f"{format_date(utc, locale)}, {time} UTC"


def format_money(value: Any, locale: str = DEFAULT_LOCALE) -> str:
    """`6,250.00 EUR` (en), `6.250,00 EUR` (de) from a Money object; the decimal string is never
    turned into a float, and digits beyond the second are kept."""
    if value is None:
        return ""
    amount: str = value.amount
    if locale == DEFAULT_LOCALE:
        sign = "-" if amount.startswith("-") else ""
        whole, _, fraction = amount.lstrip("-").partition(".")
        return f"{sign}{int(whole):,}.{fraction.ljust(2, '0')} {value.currency}"
    return _money(amount, value.currency, locale)


def format_number(value: Any, locale: str = DEFAULT_LOCALE) -> str:
    """`1,250` (en), `1.250` (de); text that is not a number is shown as it is."""
    if value is None:
        return ""
    try:
        number = value if isinstance(value, int) else Decimal(str(value))
    except InvalidOperation:
        return str(value)
    formatted: str = format_decimal(number, locale=babel_locale(locale))
    return formatted


# Babel takes tens of microseconds per value; the same dates and amounts recur within an email
# and across a campaign's emails, so results are cached (bounded).
@lru_cache(maxsize=4096)
def _long_date(day: date, locale: str) -> str:
    formatted: str = babel_date(day, format="long", locale=babel_locale(locale))
    return formatted


@lru_cache(maxsize=4096)
def _money(amount: str, currency: str, locale: str) -> str:
    formatted: str = format_currency(
        Decimal(amount),
        currency,
        format=_MONEY_PATTERN,
        locale=babel_locale(locale),
        currency_digits=False,
        decimal_quantization=False,
    )
    return formatted.replace("\u00a0", " ")


def humanize(value: str | None) -> str:
    """`change_billing_period` -> `change billing period`."""
    return "" if value is None else value.replace("_", " ")
