"""Make untrusted text safe to put in an email header.

NOTIFICATIONS.md 1: control characters are removed from every value put in a header, and
subjects are cut to 200 characters. Python 3.11.7's email package also decodes RFC 2047 encoded
words found in a header value and can fold a decoded CR/LF into a new header line
(CVE-2024-6923): `=?` is therefore broken with an invisible WORD JOINER so the text can never be
read as an encoded word, while readers still see what the sender wrote.
"""

from __future__ import annotations

import re
import unicodedata

MAX_SUBJECT = 200
_ENCODED_WORD_START = "=?"
_DEFUSED = "=\u2060?"
_WHITESPACE = re.compile(r"\s+")
# Printable ASCII with single spaces between words: nothing to remove, fold or defuse (the
# common case, checked in C instead of character by character in Python).
_ALREADY_CLEAN = re.compile(r"[!-~]+(?: [!-~]+)*")


def clean_header_text(value: str, max_length: int | None = None) -> str:
    if (
        _ALREADY_CLEAN.fullmatch(value)
        and _ENCODED_WORD_START not in value
        and (max_length is None or len(value) <= max_length)
    ):
        return value
    without_controls = "".join(
        " " if char in "\r\n\t" else char
        for char in value
        if char in "\r\n\t" or unicodedata.category(char) not in ("Cc", "Cs", "Zl", "Zp")
    )
    text = _WHITESPACE.sub(" ", without_controls).strip().replace(_ENCODED_WORD_START, _DEFUSED)
    if max_length is not None and len(text) > max_length:
        text = text[: max_length - 1].rstrip() + "…"
    return text
