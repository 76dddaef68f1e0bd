"""Scalar formats of EVENTS.md 4.2 as annotated pydantic types, with Herald's size bounds."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

# Python regexes here are used with `fullmatch` only: `re.match` with `$` also accepts a
# trailing newline, which split the To header on the wire. (pydantic's `pattern=` constraints
# run on the Rust regex engine, where `$` is the end of the text.)
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")

# RFC 5322 addr-spec without the obsolete forms: dot-atom or quoted-string, then a dot-atom
# domain or a domain literal.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
_DOMAIN_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]*\]"
_ADDR_SPEC = re.compile(rf"(?:{_DOT_ATOM}|{_QUOTED})@(?:{_DOT_ATOM}|{_DOMAIN_LITERAL})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Control characters (C0, DEL, C1 with NEL) and the Unicode line and paragraph separators, with
# any whitespace around them: every one of them can start a new line in some reader.
_LINE_BREAKING = re.compile(
    r"\s*[\x00-\x1f\x7f-\x9f\u2028\u2029][\s\x00-\x1f\x7f-\x9f\u2028\u2029]*"
)


def parse_timestamp(value: object) -> object:
    """Parse an RFC 3339 date-time that carries an offset; anything else is left to fail."""
    if not isinstance(value, str):
        return value
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise ValueError("must be an RFC 3339 date-time with offset")
    date, clock, fraction, offset = match.groups()
    fraction = (fraction or "")[:7]  # datetime keeps microseconds: '.' plus six digits
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        parsed = datetime.fromisoformat(f"{date}T{clock}{fraction}{offset}")
    except ValueError:
        raise ValueError("must be an RFC 3339 date-time with offset") from None
    return parsed.astimezone(UTC)


def is_addr_spec(value: str) -> bool:
    """Whether the whole value is one RFC 5322 addr-spec of at most 254 characters (the
    contract's `Email`)."""
    return len(value) <= 254 and _ADDR_SPEC.fullmatch(value) is not None


def _check_addr_spec(value: str) -> str:
    if not _ADDR_SPEC.fullmatch(value):
        raise ValueError("must be an RFC 5322 addr-spec")
    return value


def single_line(value: str) -> str:
    """The value on one line: each run of control characters or line separators (with the
    whitespace around it) becomes one space."""
    if value.isprintable():  # the usual case, in C: no control character, no separator
        return value
    flattened, count = _LINE_BREAKING.subn(" ", value)
    return flattened.strip() if count else value


def _check_https_url(value: str) -> str:
    if not value.startswith("https://") or len(value) <= len("https://"):
        raise ValueError("must be an absolute https URL")
    if _CONTROL.search(value) or " " in value:
        raise ValueError("must not contain spaces or control characters")
    return value


Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_check_addr_spec)]
Timestamp = Annotated[datetime, BeforeValidator(parse_timestamp)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
DecimalString = Annotated[
    str, StringConstraints(pattern=r"^-?[0-9]+(\.[0-9]{1,6})?$", max_length=40)
]
Url = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_check_https_url)]
NonNegativeInt = Annotated[int, Field(ge=0)]

# Herald's own bounds on free text (the contract bounds only the whole body, at 256 KiB).
# Names and short values are single-line by nature; a line break in one (valid input, EVENTS.md
# 4 sets no pattern) would become a line of its own in the text part, so it is normalised here,
# once, for every renderer. Long free text (comments, reasons, messages) keeps its lines.
Name = Annotated[str, StringConstraints(max_length=256), AfterValidator(single_line)]
ShortText = Annotated[str, StringConstraints(max_length=1024), AfterValidator(single_line)]
LongText = Annotated[str, StringConstraints(max_length=8192)]
Locale = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")]
