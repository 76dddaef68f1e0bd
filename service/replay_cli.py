"""`herald replay ...` (the dead-letter tool) and `herald deliveries find` (support), typer and
rich. The operations themselves are in `herald.tools.replay` and `ledger.lookup`."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import re
import socket
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from aio_pika.exceptions import DeliveryError
from aiormq.exceptions import AMQPError
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from herald.clock import utc_now
from herald.errors import ConfigurationError
from herald.ledger.audit import AuditEntry, AuditLog
from herald.ledger.lookup import find_deliveries
from herald.ledger.queue_marks import QueueMarks
from herald.ledger.records import EVERYWHERE, DeliveryRecord, Suppression, blocked_scope
from herald.ledger.store import SqlLedger
from herald.service.settings import Settings, load_settings
from herald.tools import replay

replay_app = typer.Typer(
    help="Dead letters: list, show, requeue, export, import, purge, audit.", no_args_is_help=True
)
deliveries_app = typer.Typer(help="Was it sent? Deliveries from the ledger.", no_args_is_help=True)
err = Console(stderr=True)
out = Console(soft_wrap=True)
T = TypeVar("T")

ReasonOption = Annotated[
    list[str] | None,
    typer.Option("--reason", help="x-reject-reason (or delivery_limit); repeatable."),
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
FormatOption = Annotated[str, typer.Option("--format", help="table or json.")]
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
    return replay.Filters(
        reasons=tuple(reason or ()),
        type_glob=event_type,
        source_glob=source,
        since=parse_time(since),
        until=parse_time(until),
        ids=tuple(ids or ()),
    )


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as exc:
        err.print(f"[bold red]herald:[/] {exc}")
        raise typer.Exit(code=2) from None


def _actor(by: str | None) -> str:
    return by or os.environ.get("HERALD_OPERATOR") or f"{getpass.getuser()}@{socket.gethostname()}"


def _check_format(value: str) -> None:
    if value not in ("table", "json"):
        raise typer.BadParameter("--format is table or json")


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run one operation; a broker or database failure ends the command with its reason (what
    was not settled stays in the dead-letter queue: the broker returns it)."""
    try:
        return asyncio.run(work)
    except (ConfigurationError, typer.Exit):
        raise
    except (OSError, ConnectionError, TimeoutError, AMQPError, DeliveryError) as exc:
        err.print(f"[bold red]herald:[/] {type(exc).__name__}: {exc}")
        raise typer.Exit(code=1) from None


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


@contextmanager
def _progress(label: str) -> Any:
    """A live counter on stderr for long operations (nothing when stderr is not a terminal)."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} messages"),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=None)
        yield lambda done: progress.advance(task, done)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _print_json(document: Any) -> None:
    out.print_json(json.dumps(document, default=str))


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
    _check_format(output)
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
        _print_json(
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
    table = Table(title=title)
    for column in ("#", "reason", "type", "source", "id", "rejected at", "age", "replays"):
        table.add_column(column)
    for entry in entries:
        table.add_row(
            str(entry.position),
            entry.reason,
            entry.event_type,
            entry.source or "",
            entry.event_id or "",
            entry.rejected_at.isoformat(timespec="seconds") if entry.rejected_at else "",
            _age(entry.age_seconds(now)),
            str(entry.message.replay_count),
        )
    out.print(table)
    for title, counts in (("by reason", summary["by_reason"]), ("by type", summary["by_type"])):
        if counts:
            out.print(f"{title}: " + ", ".join(f"{key} {value}" for key, value in counts.items()))
    out.print(f"summary of the {len(entries)} listed, read from {scope}")


@replay_app.command("show")
def show_command(message_id: Annotated[str, typer.Argument(help="The event id.")]) -> None:
    """Headers and the pretty-printed body of one dead letter, secrets redacted."""
    settings = _settings()
    entry = _run(replay.find_dead_letter(settings.amqp_url, message_id))
    if entry is None:
        err.print(f"[bold red]herald:[/] no dead letter with id {message_id!r}")
        raise typer.Exit(code=1)
    table = Table(title=f"dead letter {message_id}", show_header=False)
    table.add_column("name")
    table.add_column("value")
    table.add_row("routing key", entry.message.routing_key)
    for name, value in sorted(entry.message.properties.items()):
        table.add_row(f"property {name}", str(value))
    for name, value in sorted(entry.message.headers.items()):
        table.add_row(f"header {name}", str(replay.redact(value)))
    out.print(table)
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
    would still fail stay, unless --force; those from a queue that is not Herald's always stay."""
    _check_format(output)
    settings = _settings()
    filters = filters_from(reason, event_type, source, since, until, ids)

    async def work() -> replay.RequeueReport:
        async with _ledger(settings) as ledger:
            with _progress("requeueing" if not dry_run else "checking") as advance:
                return await replay.requeue(
                    settings.amqp_url,
                    filters,
                    ledger.audit,
                    actor=_actor(by),
                    dry_run=dry_run,
                    force=force,
                    rate=rate,
                    limit=limit,
                    progress=advance,
                    marks=ledger.marks,
                )

    report = _run(work())
    if output == "json":
        _print_json({"dry_run": dry_run, "counts": report.counts(), "messages": report.actions})
        return
    title = "dry run: nothing changed" if dry_run else "requeue"
    table = Table(title=title)
    for column in ("id", "type", "queue", "verdict", "reason", "action", "note"):
        table.add_column(column)
    for action in report.actions:
        table.add_row(
            action["id"] or "",
            action["type"],
            action["queue"] or "",
            action["verdict"],
            action["reason"] or "",
            ("would " if dry_run else "") + action["action"],
            action["note"] or "",
        )
    out.print(table)
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
    with _progress("exporting") as advance:
        count = _run(replay.export(settings.amqp_url, filters, file, limit, advance))
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
            with _progress("importing") as advance:
                return await replay.import_file(
                    settings.amqp_url, file, ledger.audit, actor=_actor(by), progress=advance
                )

    try:
        count = _run(work())
    except (OSError, ValueError) as exc:
        err.print(f"[bold red]herald:[/] {exc}")
        raise typer.Exit(code=2) from None
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
        err.print("[bold red]herald:[/] purge deletes messages for good: add --yes")
        raise typer.Exit(code=2)
    settings = _settings()
    filters = filters_from(reason, event_type, source, since, until, ids)

    async def work() -> int:
        async with _ledger(settings) as ledger:
            with _progress("purging") as advance:
                return await replay.purge(
                    settings.amqp_url,
                    filters,
                    ledger.audit,
                    actor=_actor(by),
                    limit=limit,
                    progress=advance,
                    marks=ledger.marks,
                )

    out.print(f"purged {_run(work())} dead letters")


@replay_app.command("audit")
def audit_command(
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    output: FormatOption = "table",
) -> None:
    """Every requeue, import and purge: who, when, filters, counts, outcome."""
    _check_format(output)
    settings = _settings()

    async def work() -> list[AuditEntry]:
        async with _ledger(settings) as ledger:
            return await ledger.audit.entries(limit)

    entries = _run(work())
    if output == "json":
        _print_json([asdict(entry) for entry in entries])
        return
    table = Table(title=f"replay audit ({len(entries)})")
    for column in ("id", "started", "actor", "action", "filters", "counts", "outcome"):
        table.add_column(column)
    for entry in entries:
        table.add_row(
            str(entry.id),
            entry.started_at.isoformat(timespec="seconds"),
            entry.actor,
            entry.action + (" (dry run)" if entry.dry_run else ""),
            json.dumps(entry.filters, sort_keys=True),
            json.dumps(entry.counts, sort_keys=True),
            entry.outcome,
        )
    out.print(table)


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
    _check_format(output)
    if (event_id is None) == (recipient is None):
        err.print("[bold red]herald:[/] give exactly one of --event-id and --recipient")
        raise typer.Exit(code=2)
    settings = _settings()

    async def work() -> tuple[list[DeliveryRecord], Blocking]:
        ledger = await SqlLedger.open(settings.database_url)
        try:
            found = await find_deliveries(
                ledger, event_id=event_id, recipient=recipient, since=parse_time(since)
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
        _print_json([_found_json(record, suppressions) for record in records])
        return
    table = Table(title=f"deliveries ({len(records)})")
    columns = (
        "notification",
        "to",
        "status",
        "when",
        "Message-ID",
        "attempts",
        "rendered",
        "detail",
    )
    for column in columns:
        table.add_column(column)
    for record in records:
        when = record.completed_at or record.last_attempt_at
        rendered = (
            f"{record.locale}, {record.brand}, templates {record.template_version}"
            if record.template_version
            else ""
        )
        table.add_row(
            record.notification,
            record.recipient,
            record.status,
            when.isoformat(timespec="seconds"),
            record.message_id,
            str(record.attempts),
            rendered,
            record.detail or "",
        )
    out.print(table)
    if not records:
        out.print("nothing in the ledger: no notification was planned for that (or not yet)")
