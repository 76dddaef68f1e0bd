"""Reading the reports mailed to the bounce domain (issue 18): a delivery status notification
(RFC 3464, `multipart/report; report-type=delivery-status`) or a complaint report (ARF,
RFC 5965, `report-type=feedback-report`), from raw bytes to verified `FeedbackReport`s.

Pure: no I/O, no clock. The input is already size-limited by the listener. Whatever the bytes,
`read_report` returns a `ReadReport` or raises `ReportRefused`, never anything else.

The delivery is named only by a signed VERP token (`senders/return_path.py`): that of an
envelope recipient, or, for a complaint (feedback loops often mail a fixed address), that of the
envelope sender the report names (its Original-Mail-From, the returned original's
Return-Path). The address suppressed is always the delivery's own recipient: addresses written
in a report's body are never trusted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser
from typing import Literal

from herald.ledger.feedback import FeedbackReport
from herald.senders.return_path import ReturnPath

ReportSource = Literal["dsn", "arf"]
EVIDENCE_CHARS = 500
MAX_RECIPIENT_BLOCKS = 100  # per DSN: more is not a report of one message to one recipient
_STATUS = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_BLOCK_SEPARATOR = re.compile(r"\r?\n[ \t]*\r?\n")
_ANGLE = re.compile(r"<([^<>]*)>")
# 5.1.x is a bad destination address, except 5.1.7 and 5.1.8: those are about the sender's.
_SENDER_SIDE = frozenset({"5.1.7", "5.1.8"})
# Feedback-Type values that mean "do not mail this person again" (RFC 5965 section 7.3);
# not-spam (RFC 6430) and auth-failure (RFC 6591) are reports too, but not complaints.
COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})
_DSN_PARTS = ("message/delivery-status", "message/global-delivery-status")
_ARF_PART = "message/feedback-report"
_ORIGINAL_MESSAGE = ("message/rfc822", "message/global")
_ORIGINAL_HEADERS = ("text/rfc822-headers", "text/global-headers")


class ReportRefused(Exception):
    """The message is not a valid report for a valid token: the listener answers 550.
    `reason` and `source` (`smtp` while the kind is unknown) are metric labels."""

    def __init__(self, reason: str, source: str = "smtp") -> None:
        self.reason = reason
        self.source = source
        super().__init__(f"{source}: {reason}")


@dataclass(frozen=True, slots=True)
class ReadReport:
    """A valid report. `reports` is empty when it changes nothing (a delay, a success, a
    policy refusal, a not-spam report): `ignored` then says why."""

    source: ReportSource
    reports: tuple[FeedbackReport, ...]
    ignored: str = ""


def read_report(raw: bytes, recipients: Sequence[str], return_path: ReturnPath) -> ReadReport:
    """Parse `raw` (the DATA of one SMTP transaction, sent to `recipients`)."""
    try:
        return _read(raw, recipients, return_path)
    except ReportRefused:
        raise
    except Exception as exc:  # the email package on hostile input: refuse, never crash
        raise ReportRefused("malformed") from exc


def _read(raw: bytes, recipients: Sequence[str], return_path: ReturnPath) -> ReadReport:
    message = message_from_bytes(raw, policy=policy.default)
    if message.get_content_type() != "multipart/report" or not message.is_multipart():
        raise ReportRefused("not_a_report")
    # The report's parts are the direct children of multipart/report (RFC 6522).
    parts = [part for part in message.get_payload() if isinstance(part, Message)]
    kinds = {part.get_content_type() for part in parts}
    prefixes = _unique(
        prefix for prefix in map(return_path.delivery_prefix, recipients) if prefix is not None
    )
    if kinds & set(_DSN_PARTS):
        return _read_dsn(_first(parts, _DSN_PARTS), prefixes)
    if _ARF_PART in kinds:
        feedback_part = _first(parts, (_ARF_PART,))
        if not prefixes:
            prefixes = _returned_prefixes(feedback_part, parts, return_path)
        return _read_arf(feedback_part, prefixes)
    raise ReportRefused("not_a_report")


def _first(parts: list[Message], kinds: tuple[str, ...]) -> Message:
    return next(part for part in parts if part.get_content_type() in kinds)


def _read_dsn(part: Message, prefixes: list[str]) -> ReadReport:
    blocks = _field_blocks(part)
    recipient_blocks = [block for block in blocks[1:] if "Action" in block or "Status" in block]
    if not recipient_blocks or len(recipient_blocks) > MAX_RECIPIENT_BLOCKS:
        raise ReportRefused("malformed", "dsn")
    if not prefixes:
        raise ReportRefused("no_token", "dsn")
    failed = False
    for block in recipient_blocks:
        action = _text(block.get("Action")).split(" ", 1)[0].lower()
        status = _status(_text(block.get("Status")))
        if action != "failed":
            continue
        failed = True
        if status is not None and status.startswith("5.1.") and status not in _SENDER_SIDE:
            evidence = _evidence(f"{status} {_text(block.get('Diagnostic-Code'))}")
            return ReadReport(
                "dsn", tuple(FeedbackReport("bounce", "dsn", evidence, p) for p in prefixes)
            )
    return ReadReport("dsn", (), "not_hard_bounce" if failed else "not_failed")


def _read_arf(part: Message, prefixes: list[str]) -> ReadReport:
    blocks = _field_blocks(part)
    fields = blocks[0] if blocks else None
    feedback_type = _text(fields.get("Feedback-Type") if fields else None).lower()
    if fields is None or not feedback_type:
        raise ReportRefused("malformed", "arf")
    if not prefixes:
        raise ReportRefused("no_token", "arf")
    feedback_type = feedback_type.split(" ", 1)[0]
    if feedback_type not in COMPLAINT_TYPES:
        return ReadReport("arf", (), "not_a_complaint")
    agent = _text(fields.get("User-Agent"))
    evidence = _evidence(f"arf {feedback_type}" + (f"; {agent}" if agent else ""))
    return ReadReport(
        "arf", tuple(FeedbackReport("complaint", "arf", evidence, p) for p in prefixes)
    )


def _returned_prefixes(
    feedback_part: Message, parts: list[Message], return_path: ReturnPath
) -> list[str]:
    """Delivery prefixes of a complaint sent to a fixed address: from the signed envelope
    sender it names (the report's Original-Mail-From, the returned original's Return-Path).
    Only a signed token counts, never a Message-ID."""
    found: list[str] = []
    for fields in _field_blocks(feedback_part)[:1]:
        for value in fields.get_all("Original-Mail-From") or []:
            found.extend(_signed(value, return_path))
    for part in parts:
        kind = part.get_content_type()
        if kind in _ORIGINAL_MESSAGE:
            headers = [item for item in part.get_payload() if isinstance(item, Message)][:1]
        elif kind in _ORIGINAL_HEADERS:
            headers = [HeaderParser(policy=policy.default).parsestr(_decoded(part))]
        else:
            continue
        for original in headers:
            for value in original.get_all("Return-Path") or []:
                found.extend(_signed(value, return_path))
    return _unique(found)


def _signed(value: object, return_path: ReturnPath) -> list[str]:
    text = _text(value)
    angle = _ANGLE.search(text)
    prefix = return_path.delivery_prefix(angle.group(1) if angle else text)
    return [] if prefix is None else [prefix]


def _field_blocks(part: Message) -> list[Message]:
    """The header-like blocks of a report part, in order. The email package parses
    message/delivery-status into one message per block, and other message/* types into one
    message whose body holds any further blocks; a transfer-encoded part stays text."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        return _parse_blocks(_decoded(part))
    blocks: list[Message] = []
    for item in payload:
        if not isinstance(item, Message):
            continue
        blocks.append(item)
        rest = item.get_payload()
        if isinstance(rest, str) and rest.strip():
            blocks.extend(_parse_blocks(rest))
    return blocks


def _parse_blocks(text: str) -> list[Message]:
    parser = HeaderParser(policy=policy.default)
    chunks = [chunk for chunk in _BLOCK_SEPARATOR.split(text.strip()) if chunk.strip()]
    return [parser.parsestr(chunk) for chunk in chunks[: MAX_RECIPIENT_BLOCKS + 1]]


def _decoded(part: Message) -> str:
    body = part.get_payload(decode=True)
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else ""


def _status(value: str) -> str | None:
    match = _STATUS.match(value)
    return None if match is None else ".".join(str(int(group)) for group in match.groups())


def _text(value: object) -> str:
    """A header value as one line of printable text (folding and control characters gone)."""
    if value is None:
        return ""
    text = " ".join(str(value).split())
    return "".join(char for char in text if char.isprintable())


def _evidence(text: str) -> str:
    return _text(text)[:EVIDENCE_CHARS]


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
