"""The dead-letter replay tool's operations: list, show, requeue, export, import, purge.

Each one browses `herald.dead-letter` without consuming (`consumers.dead_letters`), selects
messages with `Filters`, and settles only what it acted on; everything else goes back in order.
With a limit, browsing stops once that many messages matched, and the bodies of those that did
not match are not kept. `requeue` re-validates each message against the current schemas first,
with the routing key Herald checked (never one a publisher's header claims), republishes the
valid ones into the Herald queue they were consumed from (never `portal.events`) and removes a
dead letter only after the broker confirmed its copy. The ledger makes a replay safe: an event
already processed is a duplicate, an email already sent is not sent again. Requeue, import and
purge are written to the audit table before they start and when they end.

A body is anything a publisher sent: one that is not a JSON object, or nests deeper than
`MAX_BODY_DEPTH`, is opaque here (no source or id from it, shown as truncated raw text), so
parsing, redacting and printing never recurse without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from herald.consumers.dead_letter_file import from_line, to_line
from herald.consumers.dead_letters import (
    DOMAIN_QUEUES,
    DeadLetterSession,
    Held,
    StoredMessage,
    pace,
    replayed_headers,
)
from herald.consumers.delivery import InboundMessage
from herald.consumers.topology import DEAD_LETTER_QUEUE, queue_name
from herald.errors import RejectedMessage
from herald.ledger.audit import AuditLog
from herald.ledger.queue_marks import QueueMarks
from herald.schemas.decode import decode
from herald.schemas.envelope import IgnoredEvent

SECRET_KEYS = frozenset({"action_url", "password", "secret", "token", "api_key"})
REDACTED = "<redacted>"
# Contract events nest 7 levels at most; anything far deeper is not one, and parsing or printing
# it recursively would exhaust the stack (the interpreter's limit is about 1,000 frames).
MAX_BODY_DEPTH = 64
TOO_DEEP = "<nested too deeply>"
SHOWN_RAW_BYTES = 4_096  # of an opaque body
# Why a message is in herald.dead-letter: Herald's `x-reject-reason` codes (EVENTS.md 11, and
# `headers_too_large`), RabbitMQ's `x-death` reasons (Herald's queues only reach their
# `delivery_limit`; a foreign queue bound to herald.dlx may have the others), and `unknown` for
# a message with neither header. A `--reason` filter outside these is a mistake, not a filter.
HERALD_REASONS = (
    "body_too_large",
    "headers_too_large",
    "unsupported_content_type",
    "malformed_json",
    "schema_violation",
    "unknown_event_type",
)
BROKER_REASONS = ("delivery_limit", "rejected", "expired", "maxlen")
REASONS = (*HERALD_REASONS, *BROKER_REASONS, "unknown")


class Progress(Protocol):
    """Told how many messages an operation will handle, then of each one it handled."""

    def start(self, total: int) -> None: ...

    def advance(self, done: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Filters:
    """Which dead letters an operation acts on; every given filter must match."""

    reasons: tuple[str, ...] = ()
    type_glob: str | None = None
    source_glob: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ids: tuple[str, ...] = ()
    id_prefix: str | None = None  # `show`: ids that start with it

    def matches(self, entry: DeadLetter) -> bool:
        if self.reasons and entry.reason not in self.reasons:
            return False
        if self.id_prefix is not None and not (entry.event_id or "").startswith(self.id_prefix):
            return False
        if self.type_glob and not fnmatch.fnmatchcase(entry.event_type, self.type_glob):
            return False
        if self.source_glob and not (
            entry.source is not None and fnmatch.fnmatchcase(entry.source, self.source_glob)
        ):
            return False
        if self.ids and entry.event_id not in self.ids:
            return False
        if self.since or self.until:
            at = entry.rejected_at
            if at is None:
                return False
            if self.since and at < self.since:
                return False
            if self.until and at > self.until:
                return False
        return True

    def describe(self) -> dict[str, Any]:
        """The filters given, for the audit trail and JSON output."""
        return {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in asdict(self).items()
            if value not in (None, ())
        }


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter, described for people: why, what, from whom, when."""

    position: int  # 1-based place in the queue when browsed
    message: StoredMessage
    reason: str
    event_type: str  # the routing key Herald checked
    queue: str | None  # where it was consumed from or died: where a requeue puts it back
    source: str | None
    event_id: str | None
    rejected_at: datetime | None
    detail: str | None

    def age_seconds(self, now: datetime) -> float | None:
        return None if self.rejected_at is None else (now - self.rejected_at).total_seconds()

    def summary(self, now: datetime) -> dict[str, Any]:
        return {
            "position": self.position,
            "id": self.event_id,
            "reason": self.reason,
            "type": self.event_type,
            "queue": self.queue,
            "source": self.source,
            "rejected_at": None if self.rejected_at is None else self.rejected_at.isoformat(),
            "age_seconds": self.age_seconds(now),
            "detail": self.detail,
            "replay_count": self.message.replay_count,
        }


def describe(message: StoredMessage, position: int) -> DeadLetter:
    document = body_document(message.body)
    source = document.get("source") if document else None
    body_id = document.get("id") if document else None
    return DeadLetter(
        position=position,
        message=message,
        reason=message.reason,
        event_type=message.original_routing_key,
        queue=message.original_queue,
        source=source if isinstance(source, str) else None,
        event_id=message.message_id or (body_id if isinstance(body_id, str) else None),
        rejected_at=message.rejected_at,
        detail=message.detail,
    )


# A JSON string (escapes included), or one bracket outside strings.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def nests_deeper_than(text: str, limit: int) -> bool:
    """Whether JSON text opens more than `limit` arrays or objects inside each other (brackets
    inside strings do not count). Linear, without recursion, and it stops at the first level
    too many; text that is not JSON may be misjudged, but then it does not parse anyway."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for token in _JSON_TOKEN.finditer(text):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif bracket in ("]", "}"):
            depth -= 1
    return False


def body_document(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is opaque: not UTF-8, not JSON, not an
    object, or nested deeper than `MAX_BODY_DEPTH`. Never raises."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if nests_deeper_than(text, MAX_BODY_DEPTH):
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def redact(value: Any, depth: int = 0) -> Any:
    """A copy with secret links and credentials replaced (EVENTS.md 4.4); anything nested
    deeper than `MAX_BODY_DEPTH` is replaced too (header tables are a publisher's as well)."""
    if depth > MAX_BODY_DEPTH and isinstance(value, dict | list):
        return TOO_DEEP
    if isinstance(value, dict):
        return {
            key: REDACTED if str(key).lower() in SECRET_KEYS else redact(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item, depth + 1) for item in value]
    return value


def shown_body(message: StoredMessage) -> str:
    """The body pretty-printed with secrets redacted; an opaque body as text, undecodable
    bytes escaped, its first `SHOWN_RAW_BYTES` bytes only, saying so when cut or too deep."""
    document = body_document(message.body)
    if document is not None:
        return json.dumps(redact(document), indent=2, ensure_ascii=False)
    size = len(message.body)
    shown = message.body[:SHOWN_RAW_BYTES].decode("utf-8", errors="backslashreplace")
    too_deep = nests_deeper_than(message.body.decode("utf-8", errors="replace"), MAX_BODY_DEPTH)
    if size > SHOWN_RAW_BYTES or too_deep:
        why = f", nested deeper than {MAX_BODY_DEPTH} levels" if too_deep else ""
        shown += f"\n... (raw text{why}; {min(size, SHOWN_RAW_BYTES)} of {size} bytes shown)"
    return shown


# Re-validation ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """What Herald would do with a replayed message: `valid` (processed), `invalid`
    (dead-lettered again, with the reason) or `ignored` (a type the contract does not define)."""

    outcome: str
    domain: str | None
    reason: str | None = None
    detail: str | None = None


def revalidate(entry: DeadLetter) -> Verdict:
    """Run the consumer's checks (EVENTS.md 11, 1 to 8) with the current schemas, the routing
    key Herald checked and the queue the message came from. A key that queue is not bound to
    fails like a key that differs from the type: Herald's queues only ever receive their own
    domain's keys."""
    domain = entry.event_type.split(".", 1)[0]
    queue = entry.queue or ""
    properties = entry.message.properties
    inbound = InboundMessage(
        body=entry.message.body,
        routing_key=entry.event_type,
        content_type=properties.get("content_type"),
        content_encoding=properties.get("content_encoding"),
        message_id=entry.message.message_id,
        queue=queue,
    )
    try:
        decoded = decode(inbound)
    except RejectedMessage as rejection:
        return Verdict("invalid", None, rejection.reason, rejection.detail)
    if queue != queue_name(domain):
        return Verdict(
            "invalid",
            None,
            "schema_violation",
            f"routing key {entry.event_type} does not belong in {queue or 'an unknown queue'}",
        )
    if isinstance(decoded, IgnoredEvent):
        return Verdict("ignored", domain, "unknown_type", f"{decoded.type} is not defined")
    return Verdict("valid", domain)


# Operations ---------------------------------------------------------------------------------


@dataclass
class Selection:
    """The dead letters the filters selected (up to the limit), and how much of the queue was
    read to find them. Only the selected keep their bodies."""

    queue_total: int  # ready in the queue when reading began
    selected: list[tuple[Held, DeadLetter]] = field(default_factory=list)
    read: int = 0  # taken (and held) to find them
    complete: bool = False  # the whole queue was read
    others: int = 0  # read but not selected
    others_oldest: datetime | None = None  # the oldest known rejection time among them

    def skip(self, entry: DeadLetter) -> None:
        self.others += 1
        at = entry.rejected_at
        if at is not None and (self.others_oldest is None or at < self.others_oldest):
            self.others_oldest = at


async def select(
    session: DeadLetterSession, filters: Filters, limit: int | None = None
) -> Selection:
    """Read the queue in order until `limit` messages matched (or to its end), holding
    every message read so that all go back in order."""
    selection = Selection(queue_total=await session.depth())
    while limit is None or len(selection.selected) < limit:
        held = await session.take()
        if held is None:
            selection.complete = True
            break
        selection.read += 1
        entry = describe(held.message, selection.read)
        if filters.matches(entry):
            selection.selected.append((held, entry))
        else:
            selection.skip(entry)  # the session keeps its delivery tag only, not the body
    return selection


async def record_oldest(marks: QueueMarks | None, selection: Selection) -> None:
    """Tell the ledger the exact age of the oldest dead letter left (the queue watch's
    `herald_queue_oldest_message_age_seconds`), when the whole queue was read."""
    if marks is None or not selection.complete:
        return
    left = [held.message.rejected_at for held, _ in selection.selected if not held.settled]
    known = [at for at in (*left, selection.others_oldest) if at is not None]
    if not left and not selection.others:
        await marks.set_oldest(DEAD_LETTER_QUEUE, None)
    elif known:
        await marks.set_oldest(DEAD_LETTER_QUEUE, min(known))


@dataclass(frozen=True, slots=True)
class Listing:
    """What `list` found: the selected dead letters, how many the queue held when reading
    began, how many were read, and whether that was all of them."""

    entries: list[DeadLetter]
    queue_total: int
    read: int
    complete: bool


async def list_dead_letters(
    url: str, filters: Filters, limit: int | None = None, marks: QueueMarks | None = None
) -> Listing:
    """The selected dead letters; nothing is consumed. With a limit, reading stops once that
    many matched."""
    async with DeadLetterSession(url, connection_name="herald-replay-list") as session:
        selection = await select(session, filters, limit)
        await record_oldest(marks, selection)
    return Listing(
        entries=[entry for _, entry in selection.selected],
        queue_total=selection.queue_total,
        read=selection.read,
        complete=selection.complete,
    )


@dataclass(frozen=True, slots=True)
class Found:
    """What `show ID` found: the dead letter whose id is ID, or the only one whose id starts
    with it (`entry`), or None; and the distinct ids that start with it (`candidates`)."""

    entry: DeadLetter | None
    candidates: tuple[str, ...]


async def find_dead_letter(url: str, prefix: str, marks: QueueMarks | None = None) -> Found:
    """The dead letter with id `prefix`, else the one id starting with it. The whole queue is
    read (and left in order) to know whether a prefix is ambiguous; an exact id wins over
    longer ids it is a prefix of, and the first of several copies of one id is shown."""
    listing = await list_dead_letters(url, Filters(id_prefix=prefix), marks=marks)
    candidates = tuple(dict.fromkeys(entry.event_id or "" for entry in listing.entries))
    exact = [entry for entry in listing.entries if entry.event_id == prefix]
    if exact:
        return Found(exact[0], candidates)
    if len(candidates) == 1:
        return Found(listing.entries[0], candidates)
    return Found(None, candidates)


@dataclass
class RequeueReport:
    dry_run: bool
    selected: int = 0
    requeued: int = 0
    still_invalid: int = 0
    ignored: int = 0
    forced: int = 0
    unroutable: int = 0
    actions: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "selected": self.selected,
            "requeued": self.requeued,
            "still_invalid": self.still_invalid,
            "ignored": self.ignored,
            "forced": self.forced,
            "unroutable": self.unroutable,
        }


async def requeue(
    url: str,
    filters: Filters,
    audit: AuditLog,
    *,
    actor: str,
    dry_run: bool = False,
    force: bool = False,
    rate: float | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
    marks: QueueMarks | None = None,
) -> RequeueReport:
    """Re-validate and republish the selected dead letters into `herald.<domain>`.

    Each goes back to the queue it was consumed from or died in. Still-invalid (and
    undefined-type) messages stay unless `force`; one from a queue that is not Herald's has
    nowhere to go and stays, even forced. With `dry_run` nothing changes.
    """
    report = RequeueReport(dry_run=dry_run)
    audit_id = await audit.start("requeue", actor, _audited(filters, force, rate, limit), dry_run)
    try:
        async with DeadLetterSession(url, connection_name="herald-replay-requeue") as session:
            selection = await select(session, filters, limit)
            report.selected = len(selection.selected)
            if progress is not None:
                progress.start(report.selected)
            started = asyncio.get_running_loop().time()
            for held, entry in selection.selected:
                verdict = revalidate(entry)
                action, note = _plan(verdict, entry, force)
                report.actions.append(
                    {
                        "id": entry.event_id,
                        "type": entry.event_type,
                        "queue": entry.queue,
                        "verdict": verdict.outcome,
                        "reason": verdict.reason,
                        "detail": verdict.detail,
                        "action": action,
                        "note": note,
                    }
                )
                if action == "requeue":
                    if verdict.outcome != "valid":
                        report.forced += 1
                    if not dry_run:
                        assert entry.queue is not None  # _plan checked it is Herald's
                        copy = held.message.to_message(replayed_headers(held.message, actor))
                        await session.publish_to_queue(copy, entry.queue)
                        await session.remove(held)  # only after the broker confirmed the copy
                        await pace(rate, started, report.requeued + 1)
                    report.requeued += 1
                elif action == "keep_unroutable":
                    report.unroutable += 1
                elif verdict.outcome == "ignored":
                    report.ignored += 1
                else:
                    report.still_invalid += 1
                if progress is not None:
                    progress.advance(1)
            await record_oldest(marks, selection)
    except BaseException as exc:
        await _finish_quietly(audit, audit_id, "failed", report.counts(), repr(exc))
        raise
    await audit.finish(audit_id, "ok", report.counts())
    return report


def _plan(verdict: Verdict, entry: DeadLetter, force: bool) -> tuple[str, str | None]:
    """What to do with one dead letter, and why when that is not plain. It only ever goes
    back to the Herald queue it came from, whatever its headers say."""
    if entry.queue not in DOMAIN_QUEUES:
        return "keep_unroutable", (
            f"dead-lettered from {entry.queue or 'an unknown queue'}, which is not one of "
            "Herald's queues: there is nowhere to put it back, even with --force"
        )
    if verdict.outcome == "valid":
        return "requeue", None
    if not force:
        return "keep", None
    return "requeue", "forced"


def _audited(
    filters: Filters, force: bool, rate: float | None, limit: int | None
) -> dict[str, Any]:
    options = {"force": force, "rate": rate, "limit": limit}
    return {**filters.describe(), **{key: value for key, value in options.items() if value}}


async def _finish_quietly(
    audit: AuditLog, audit_id: int, outcome: str, counts: dict[str, int], detail: str
) -> None:
    # The original error matters more than a failed audit update.
    with contextlib.suppress(Exception):
        await asyncio.shield(audit.finish(audit_id, outcome, counts, detail))


async def purge(
    url: str,
    filters: Filters,
    audit: AuditLog,
    *,
    actor: str,
    limit: int | None = None,
    progress: Progress | None = None,
    marks: QueueMarks | None = None,
) -> int:
    """Delete the selected dead letters; returns how many."""
    audit_id = await audit.start("purge", actor, _audited(filters, False, None, limit))
    purged = 0
    try:
        async with DeadLetterSession(url, connection_name="herald-replay-purge") as session:
            selection = await select(session, filters, limit)
            if progress is not None:
                progress.start(len(selection.selected))
            for held, _ in selection.selected:
                await session.remove(held)
                purged += 1
                if progress is not None:
                    progress.advance(1)
            await record_oldest(marks, selection)
    except BaseException as exc:
        await _finish_quietly(audit, audit_id, "failed", {"purged": purged}, repr(exc))
        raise
    await audit.finish(audit_id, "ok", {"purged": purged})
    return purged


async def export(
    url: str,
    filters: Filters,
    path: Path,
    limit: int | None = None,
    progress: Progress | None = None,
) -> int:
    """Write the selected dead letters to `path` as JSON lines; nothing is consumed."""
    async with DeadLetterSession(url, connection_name="herald-replay-export") as session:
        selection = await select(session, filters, limit)
        lines = [to_line(held.message) for held, _ in selection.selected]
        await asyncio.to_thread(_write_lines, path, lines)
        if progress is not None:
            progress.start(len(lines))
            progress.advance(len(lines))
    return len(lines)


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    temporary = path.with_name(path.name + ".partial")
    temporary.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    temporary.replace(path)


def read_export(path: Path) -> list[StoredMessage]:
    """Parse a file written by `export`; a bad line stops the import before anything is
    published, naming the line."""
    messages = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            messages.append(from_line(line))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from exc
    return messages


async def import_file(
    url: str,
    path: Path,
    audit: AuditLog,
    *,
    actor: str,
    progress: Progress | None = None,
) -> int:
    """Publish every message of an export back into the dead-letter queue (confirmed)."""
    messages = await asyncio.to_thread(read_export, path)
    audit_id = await audit.start("import", actor, {"file": path.name})
    imported = 0
    try:
        async with DeadLetterSession(url, connection_name="herald-replay-import") as session:
            if progress is not None:
                progress.start(len(messages))
            for message in messages:
                await session.publish_dead_letter(message)
                imported += 1
                if progress is not None:
                    progress.advance(1)
    except BaseException as exc:
        await _finish_quietly(audit, audit_id, "failed", {"imported": imported}, repr(exc))
        raise
    await audit.finish(audit_id, "ok", {"imported": imported})
    return imported


def summarize(entries: Iterable[DeadLetter]) -> dict[str, dict[str, int]]:
    """Counts by reason and by event type."""
    by_reason: dict[str, int] = {}
    by_type: dict[str, int] = {}
    for entry in entries:
        by_reason[entry.reason] = by_reason.get(entry.reason, 0) + 1
        by_type[entry.event_type] = by_type.get(entry.event_type, 0) + 1
    return {
        "by_reason": dict(sorted(by_reason.items())),
        "by_type": dict(sorted(by_type.items())),
    }
