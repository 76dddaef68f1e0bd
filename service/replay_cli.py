"""`herald replay ...` (the dead-letter tool) and `herald deliveries find` (support), typer and
rich. The operations themselves are in `herald.tools.replay` and `ledger.lookup`; how results
are printed (tables with whole identifiers, JSON, one-line errors, progress) is in
`service.tables`, `service.cli_output` and `service.progress`."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import re
import socket
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from aio_pika.exceptions import DeliveryError
from aiormq.exceptions import AMQPError
from rich.console import Console

from herald.clock import utc_now
from herald.errors import ConfigurationError
from herald.ledger.audit import AuditEntry, AuditLog
from herald.ledger.lookup import find_deliveries
from herald.ledger.queue_marks import QueueMarks
from herald.ledger.records import EVERYWHERE, DeliveryRecord, Suppression, blocked_scope
from herald.ledger.store import SqlLedger
from herald.service.cli_output import check_format, fail, iso, json_default, print_json
from herald.service.progress import progress_on
from herald.service.settings import Settings, load_settings
from herald.service.tables import Column, print_table
from herald.tools import replay

replay_app = typer.Typer(
    help="Dead letters: list, show, requeue, export, import, purge, audit.", no_args_is_help=True
)
deliveries_app = typer.Typer(help="Was it sent? Deliveries from the ledger.", no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
T = TypeVar("T")

ReasonOption = Annotated[
    list[str] | None,
    typer.Option(
        "--reason",
        help=f"x-reject-reason (or delivery_limit); repeatable: {', '.join(replay.REASONS)}.",
    ),
]
TypeOption = Annotated[str | None, typer.Option("--type", help="Event type glob, e.g. 'orders.*'.")]
SourceOption = Annotated[str | None, typer.Option("--source", help="CloudEvents source glob.")]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="Rejected at or after: ISO 8601, or an age like 30m, 2h, 7d."),
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="Rejected at or before: ISO 8601 or an age.")
]
IdOption = Annotated[list[str] | None, typer.Option("--id", help="Event id; repeatable.")]
LimitOption = Annotated[
    int | None, typer.Option("--limit", min=1, help="Act on at most N matching messages.")
]
FormatOption = Annotated[
    str, typer.Option("--format", help="table or json (one JSON document on stdout).")
]
ByOption = Annotated[
    str | None,
    typer.Option("--by", help="Who is acting (audit, x-herald-replayed-by); default user@host."),
]

_AGE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(value: str | None, now: datetime | None = None) -> datetime | None:
    """ISO 8601 (a time without zone is UTC) or an age before now (`90s`, `30m`, `2h`, `7d`)."""
    if value is None:
        return None
    match = _AGE.match(value.strip())
    if match:
        amount, unit = int(match.group(1)), _UNITS[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: amount})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither ISO 8601 nor an age like 2h") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def filters_from(
    reason: list[str] | None,
    event_type: str | None,
    source: str | None,
    since: str | None,
    until: str | None,
    ids: list[str] | None,
) -> replay.Filters:
    """The filters of the command line; an unknown reason or an unreadable time ends the
    command (exit 2) rather than select nothing."""
    unknown = [value for value in reason or () if value not in replay.REASONS]
    if unknown:
        fail(f"unknown --reason {unknown[0]!r}: one of {', '.join(replay.REASONS)}")
    try:
        since_at, until_at = parse_time(since), parse_time(until)
    except typer.BadParameter as exc:
        fail(f"--since/--until: {exc.message}")
    return replay.Filters(
        reasons=tuple(reason or ()),
        type_glob=event_type,
        source_glob=source,
        since=since_at,
        until=until_at,
        ids=tuple(ids or ()),
    )


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as exc:
        fail(str(exc))


def _actor(by: str | None) -> str:
    return by or os.environ.get("HERALD_OPERATOR") or f"{getpass.getuser()}@{socket.gethostname()}"


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run one operation; a broker or database failure ends the command with its reason (what
    was not settled stays in the dead-letter queue: the broker returns it)."""
    try:
        return asyncio.run(work)
    except (ConfigurationError, typer.Exit):
        raise
    except (OSError, ConnectionError, TimeoutError, AMQPError, DeliveryError) as exc:
        fail(f"{type(exc).__name__}: {exc}", code=1)


@dataclass(frozen=True, slots=True)
class _Ledger:
    audit: AuditLog
    marks: QueueMarks


@asynccontextmanager
async def _ledger(settings: Settings) -> AsyncIterator[_Ledger]:
    ledger = await SqlLedger.open(settings.database_url)
    try:
        yield _Ledger(AuditLog(ledger), QueueMarks(ledger))
    finally:
        await ledger.close()


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@replay_app.command("list")
def list_command(
    reason: ReasonOption = None,
    event_type: TypeOption = None,
    source: SourceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    ids: IdOption = None,
    limit: LimitOption = None,
    output: FormatOption = "table",
) -> None:
    """List dead letters (reason, type, source, id, rejected-at, age) with a summary.

    Nothing is consumed: the messages stay in the queue, in order."""
    output = check_format(output)
    settings = _settings()
    filters = filters_from(reason, event_type, source, since, until, ids)

    async def work() -> replay.Listing:
        async with _ledger(settings) as ledger:
            return await replay.list_dead_letters(settings.amqp_url, filters, limit, ledger.marks)

    listing = _run(work())
    entries, total = listing.entries, listing.queue_total
    now = utc_now()
    summary = replay.summarize(entries)
    # Stopped at --limit: the rest of the queue was not read, so the summary covers less.
    scope = (
        f"the whole queue ({listing.read} messages)"
        if listing.complete
        else f"the first {listing.read} of {total} messages"
    )
    if output == "json":
        print_json(
            {
                "queue_total": total,
                "read": listing.read,
                "complete": listing.complete,
                "matched": len(entries),
                "filters": filters.describe(),
                "summary": summary,
                "messages": [entry.summary(now) for entry in entries],
            }
        )
        return
    title = f"herald.dead-letter: {len(entries)} of {total} messages"
    if not listing.complete:
        title += f" (stopped at --limit after reading the first {listing.read})"
    columns = (
        Column("#"),
        Column("reason"),
        Column("type"),
        Column("source"),
        Column("id", whole=True),
        Column("rejected at", whole=True),
        Column("age"),
        Column("replays"),
    )
    rows = [
        (
            str(entry.position),
            entry.reason,
            entry.event_type,
            entry.source or "",
            entry.event_id or "",
            iso(entry.rejected_at),
            _age(entry.age_seconds(now)),
            str(entry.message.replay_count),
        )
        for entry in entries
    ]
    print_table(out, title, columns, rows)
    for title, counts in (("by reason", summary["by_reason"]), ("by type", summary["by_type"])):
        if counts:
            listed = ", ".join(f"{key} {value}" for key, value in counts.items())
            out.print(f"{title}: {listed}", markup=False)  # reasons come from headers
    out.print(f"summary of the {len(entries)} listed, read from {scope}")


def _shown_value(value: Any) -> str:
    """A property or header value for the `show` table: times in ISO 8601, tables and lists
    as indented JSON (secrets redacted), text as it is."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict | list):
        return json.dumps(replay.redact(value), indent=2, ensure_ascii=False, default=json_default)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)


def _shown_json(entry: replay.DeadLetter) -> dict[str, Any]:
    """One dead letter as `show --format json` prints it: the `list` fields, the routing key,
    properties and headers (redacted), and the body as a JSON object, or as `body_text` (the
    shown raw text) when it is opaque."""
    message = entry.message
    document = replay.body_document(message.body)
    return {
        **entry.summary(utc_now()),
        "routing_key": message.routing_key,
        "properties": dict(message.properties),
        "headers": replay.redact(dict(message.headers)),
        "body": None if document is None else replay.redact(document),
        "body_text": replay.shown_body(message) if document is None else None,
    }


@replay_app.command("show")
def show_command(
    message_id: Annotated[
        str, typer.Argument(help="The event id, or a prefix of it that only one id starts with.")
    ],
    output: FormatOption = "table",
) -> None:
    """Headers and the pretty-printed body of one dead letter, secrets redacted."""
    output = check_format(output)
    settings = _settings()
    found = _run(replay.find_dead_letter(settings.amqp_url, message_id))
    entry = found.entry
    if entry is None and len(found.candidates) > 1:
        shown = ", ".join(found.candidates[:5]) + (", ..." if len(found.candidates) > 5 else "")
        fail(
            f"{len(found.candidates)} dead letters have an id starting with {message_id!r} "
            f"({shown}): give more of it"
        )
    if entry is None:
        fail(f"no dead letter with id {message_id!r} (or an id starting with it)", code=1)
    if output == "json":
        print_json(_shown_json(entry))
        return
    rows = [("routing key", entry.message.routing_key)]
    rows += [
        (f"property {name}", _shown_value(value))
        for name, value in sorted(entry.message.properties.items())
    ]
    rows += [
        (f"header {name}", _shown_value(value))
        for name, value in sorted(entry.message.headers.items())
    ]
    columns = (Column("name", whole=True), Column("value"))
    title = f"dead letter {entry.event_id or message_id}"
    print_table(out, title, columns, rows, show_header=False)
    out.print(replay.shown_body(entry.message), markup=False, highlight=False)


@replay_app.command("requeue")
def requeue_command(
    reason: ReasonOption = None,
    event_type: TypeOption = None,
    source: SourceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    ids: IdOption = None,
    limit: LimitOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Requeue messages that would still fail, too.")
    ] = False,
    rate: Annotated[
        float | None, typer.Option("--rate", min=0.001, help="At most N messages per second.")
    ] = None,
    by: ByOption = None,
    output: FormatOption = "table",
) -> None:
    """Re-validate dead letters and republish the valid ones into Herald's own queue.

    Each goes back to the herald.<domain> queue it was consumed from (never portal.events) and
    is removed from the dead-letter queue only once the broker confirmed its copy. Those that
    would still fail stay, unless --force; those from a queue that is not Herald's always stay.
    Progress goes to stderr: a bar on a terminal, else a line every few seconds."""
    output = check_format(output)
    settings = _settings()
    filters = filters_from(reason, event_type, source, since, until, ids)

    async def work() -> replay.RequeueReport:
        async with _ledger(settings) as ledger:
            with progress_on(err, "checked" if dry_run else "requeued") as progress:
                return await replay.requeue(
                    settings.amqp_url,
                    filters,
                    ledger.audit,
                    actor=_actor(by),
                    dry_run=dry_run,
                    force=force,
                    rate=rate,
                    limit=limit,
                    progress=progress,
                    marks=ledger.marks,
                )

    report = _run(work())
    if output == "json":
        print_json({"dry_run": dry_run, "counts": report.counts(), "messages": report.actions})
        return
    columns = (
        Column("id", whole=True),
        Column("type"),
        Column("queue"),
        Column("verdict"),
        Column("reason"),
        Column("action"),
        Column("note"),
    )
    rows = [
        (
            action["id"] or "",
            action["type"],
            action["queue"] or "",
            action["verdict"],
            action["reason"] or "",
            ("would " if dry_run else "") + action["action"],
            action["note"] or "",
        )
        for action in report.actions
    ]
    print_table(out, "dry run: nothing changed" if dry_run else "requeue", columns, rows)
    verb = "would requeue" if dry_run else "requeued"
    out.print(
        f"{report.selected} selected, {verb} {report.requeued} ({report.forced} forced), "
        f"{report.still_invalid} still invalid and kept, {report.ignored} of undefined types "
        f"kept, {report.unroutable} without a domain queue kept"
    )


@replay_app.command("export")
def export_command(
    file: Annotated[Path, typer.Argument(help="JSON lines file to write.")],
    reason: ReasonOption = None,
    event_type: TypeOption = None,
    source: SourceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    ids: IdOption = None,
    limit: LimitOption = None,
) -> None:
    """Write dead letters to FILE as JSON lines, losslessly; nothing is consumed."""
    settings = _settings()
    filters = filters_from(reason, event_type, source, since, until, ids)
    with progress_on(err, "exported") as progress:
        count = _run(replay.export(settings.amqp_url, filters, file, limit, progress))
    out.print(f"exported {count} dead letters to {file}")


@replay_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="A file written by `herald replay export`.")],
    by: ByOption = None,
) -> None:
    """Publish every message of FILE back into the dead-letter queue (confirmed)."""
    settings = _settings()

    async def work() -> int:
        async with _ledger(settings) as ledger:
            with progress_on(err, "imported") as progress:
                return await replay.import_file(
                    settings.amqp_url, file, ledger.audit, actor=_actor(by), progress=progress
                )

    try:
        count = _run(work())
    except (OSError, ValueError) as exc:
        fail(str(exc))
    out.print(f"imported {count} dead letters from {file}")


@replay_app.command("purge")
def purge_command(
    reason: ReasonOption = None,
    event_type: TypeOption = None,
    source: SourceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    ids: IdOption = None,
    limit: LimitOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Required: really delete.")] = False,
    by: ByOption = None,
) -> None:
    """Delete the selected dead letters for good (export them first to keep a copy)."""
    if not yes:
        fail("purge deletes messages for good: add --yes")
    settings = _settings()
    filters = filters_from(reason, event_type, source, since, until, ids)

    async def work() -> int:
        async with _ledger(settings) as ledger:
            with progress_on(err, "purged") as progress:
                return await replay.purge(
                    settings.amqp_url,
                    filters,
                    ledger.audit,
                    actor=_actor(by),
                    limit=limit,
                    progress=progress,
                    marks=ledger.marks,
                )

    out.print(f"purged {_run(work())} dead letters")


def _lines(values: dict[str, Any]) -> str:
    """A JSON object of the audit as `key: value` lines (nested values as compact JSON)."""
    if not values:
        return "-"
    return "\n".join(
        f"{key}: {value if isinstance(value, str) else json.dumps(value, default=json_default)}"
        for key, value in sorted(values.items())
    )


@replay_app.command("audit")
def audit_command(
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    output: FormatOption = "table",
) -> None:
    """Every requeue, import and purge: who, when, filters, counts, outcome."""
    output = check_format(output)
    settings = _settings()

    async def work() -> list[AuditEntry]:
        async with _ledger(settings) as ledger:
            return await ledger.audit.entries(limit)

    entries = _run(work())
    if output == "json":
        print_json([asdict(entry) for entry in entries])
        return
    columns = (
        Column("id"),
        Column("started", whole=True),
        Column("actor"),
        Column("action"),
        Column("filters"),
        Column("counts"),
        Column("outcome"),
    )
    rows = [
        (
            str(entry.id),
            iso(entry.started_at),
            entry.actor,
            entry.action + (" (dry run)" if entry.dry_run else ""),
            _lines(entry.filters),
            _lines(entry.counts),
            entry.outcome + (f": {entry.detail}" if entry.detail else ""),
        )
        for entry in entries
    ]
    print_table(out, f"replay audit ({len(entries)})", columns, rows)


# The suppression that blocked each blocked delivery, by (recipient, scope or None for `all`).
Blocking = dict[tuple[str, str | None], Suppression]


def _found_json(record: DeliveryRecord, suppressions: Blocking) -> dict[str, Any]:
    """A record as `deliveries find --format json` shows it; a blocked one also names the
    suppression that still blocks its recipient (null once removed; `detail` keeps the reason
    it was blocked for)."""
    document = asdict(record)
    if record.status == "blocked":
        suppression = suppressions.get((record.recipient, blocked_scope(record.detail)))
        document["suppression"] = None if suppression is None else asdict(suppression)
    return document


@deliveries_app.command("find")
def deliveries_find(
    event_id: Annotated[str | None, typer.Option("--event-id", help="The event's id.")] = None,
    recipient: Annotated[
        str | None, typer.Option("--recipient", help="An email address (or webhook URL).")
    ] = None,
    since: SinceOption = None,
    output: FormatOption = "table",
) -> None:
    """Was it sent to this person, when, with which Message-ID, and if not, why."""
    output = check_format(output)
    if (event_id is None) == (recipient is None):
        fail("give exactly one of --event-id and --recipient")
    try:
        since_at = parse_time(since)
    except typer.BadParameter as exc:
        fail(f"--since: {exc.message}")
    settings = _settings()

    async def work() -> tuple[list[DeliveryRecord], Blocking]:
        ledger = await SqlLedger.open(settings.database_url)
        try:
            found = await find_deliveries(
                ledger, event_id=event_id, recipient=recipient, since=since_at
            )
            blocked = {
                (record.recipient, blocked_scope(record.detail))
                for record in found
                if record.status == "blocked"
            }
            in_force = await ledger.in_force(sorted(blocked, key=str))
            return found, {
                (address, scope): suppression
                for address, scope in blocked
                if (suppression := in_force.get((address, scope or EVERYWHERE))) is not None
            }
        finally:
            await ledger.close()

    records, suppressions = _run(work())
    if output == "json":
        print_json([_found_json(record, suppressions) for record in records])
        return
    columns = (
        Column("notification", whole=True),
        Column("to", whole=True),
        Column("status"),
        Column("when", whole=True),
        Column("Message-ID", whole=True),
        Column("attempts"),
        Column("rendered"),
        Column("detail"),
    )
    rows = [
        (
            record.notification,
            record.recipient,
            record.status,
            iso(record.completed_at or record.last_attempt_at),
            record.message_id,
            str(record.attempts),
            (
                f"{record.locale}, {record.brand}, templates {record.template_version}"
                if record.template_version
                else ""
            ),
            record.detail or "",
        )
        for record in records
    ]
    print_table(out, f"deliveries ({len(records)})", columns, rows)
    if not records:
        out.print("nothing in the ledger: no notification was planned for that (or not yet)")
