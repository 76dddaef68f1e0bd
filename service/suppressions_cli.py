"""`herald suppressions list|add|remove|unsubscribe|resubscribe|export|import`: the addresses
Herald does not mail, for support and operators (typer). The list itself is
`ledger/suppressions.py`; every add and remove is audited there (who, when, why). Errors are one
plain line on stderr and exit code 2 (1 when the database cannot be reached)."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from herald.catalog.config import CATEGORIES
from herald.errors import ConfigurationError
from herald.ledger.health import LedgerUnavailable
from herald.ledger.records import REASONS
from herald.ledger.store import SqlLedger
from herald.ledger.suppressions import SuppressionList, normalise_address
from herald.schemas.scalars import is_addr_spec
from herald.service.cli_output import FORMATS, iso, print_json
from herald.service.replay_cli import _actor, parse_time
from herald.service.settings import load_settings
from herald.service.tables import Column, print_table

suppressions_app = typer.Typer(
    help="The suppression list: addresses Herald does not mail.", no_args_is_help=True
)
out = Console(soft_wrap=True)
T = TypeVar("T")

FIELDS = ("address", "scope", "reason", "source", "evidence", "created_at", "created_by")
# What providers call the reasons in their exported lists.
_REASON_ALIASES = {
    "bounce": "hard_bounce",
    "hardbounce": "hard_bounce",
    "hard bounce": "hard_bounce",
    "spamreport": "complaint",
    "spam": "complaint",
    "unsubscribe": "unsubscribed",
}

ByOption = Annotated[
    str | None, typer.Option("--by", help="Who is acting (audit); default user@host.")
]


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"herald: {message}", err=True)
    raise typer.Exit(code=code)


def _address(value: str) -> str:
    value = value.strip()
    if not is_addr_spec(value):
        _fail(f"not an email address (RFC 5322 addr-spec): {value!r}")
    return normalise_address(value)


def _reason(value: str) -> str:
    reason = value.strip().lower()
    reason = _REASON_ALIASES.get(reason, reason)
    if reason not in REASONS:
        _fail(f"unknown reason {value!r}: one of {', '.join(REASONS)}")
    return reason


def _with_list(work: Callable[[SuppressionList], Coroutine[Any, Any, T]]) -> T:
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        _fail(str(exc))

    async def run() -> T:
        ledger = await SqlLedger.open(settings.database_url)
        try:
            return await work(SuppressionList(ledger))
        finally:
            await ledger.close()

    try:
        return asyncio.run(run())
    except (LedgerUnavailable, SQLAlchemyError, OSError) as exc:
        _fail(f"the ledger is unavailable: {type(exc).__name__}", code=1)


@suppressions_app.command("list")
def list_command(
    address: Annotated[str | None, typer.Option("--address", help="Only this address.")] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help=f"Only this reason: {', '.join(REASONS)}.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Added at or after: ISO 8601, or an age like 30m, 2h, 7d."),
    ] = None,
    output: Annotated[
        str, typer.Option("--format", help="table or json (one JSON document on stdout).")
    ] = "table",
) -> None:
    """The suppressions, oldest first."""
    output = output.lower()
    if output not in FORMATS:
        _fail(f"--format is table or json, not {output!r}")
    wanted = None if address is None else _address(address)
    wanted_reason = None if reason is None else _reason(reason)
    try:
        after = parse_time(since)
    except typer.BadParameter as exc:
        _fail(f"--since: {exc.message}")
    entries = _with_list(lambda listing: listing.entries(wanted, wanted_reason, after))
    if output == "json":
        print_json([asdict(entry) for entry in entries])  # times in ISO 8601 (print_json)
        return
    columns = (
        Column("address", whole=True),
        Column("scope", whole=True),
        Column("reason"),
        Column("source"),
        Column("added", whole=True),
        Column("by"),
        Column("evidence"),
    )
    rows = [
        (
            entry.address,
            entry.scope,
            entry.reason,
            entry.source,
            iso(entry.created_at),
            entry.created_by,
            entry.evidence or "",
        )
        for entry in entries
    ]
    print_table(out, f"suppressions ({len(entries)})", columns, rows)


@suppressions_app.command("add")
def add_command(
    address: Annotated[str, typer.Argument(help="The address not to mail.")],
    reason: Annotated[
        str, typer.Option("--reason", help=f"One of {', '.join(REASONS)}.")
    ] = "manual",
    note: Annotated[str | None, typer.Option("--note", help="Why (kept in the audit).")] = None,
    by: ByOption = None,
) -> None:
    """Stop mailing ADDRESS (every notification type; idempotent)."""
    normalised, chosen = _address(address), _reason(reason)
    actor = _actor(by)
    added = _with_list(
        lambda listing: listing.add(normalised, chosen, "cli", actor, evidence=note, note=note)
    )
    typer.echo(f"{'added' if added else 'already listed'}: {normalised} ({chosen})")


@suppressions_app.command("remove")
def remove_command(
    address: Annotated[str, typer.Argument(help="The address to mail again.")],
    note: Annotated[str | None, typer.Option("--note", help="Why (kept in the audit).")] = None,
    by: ByOption = None,
) -> None:
    """Mail ADDRESS again: remove every suppression it has."""
    normalised = _address(address)
    actor = _actor(by)
    removed = _with_list(lambda listing: listing.remove(normalised, actor, note=note))
    typer.echo(f"removed {removed} suppression(s) of {normalised}")


def _category(value: str) -> str:
    if value not in CATEGORIES:
        _fail(f"unknown category {value!r}: one of {', '.join(CATEGORIES)}")
    return value


CategoryOption = Annotated[
    str, typer.Option("--category", help=f"The configured list: {', '.join(CATEGORIES)}.")
]
PartnerOption = Annotated[str, typer.Option("--partner", help="The partner id (data.partner.id).")]


@suppressions_app.command("unsubscribe")
def unsubscribe_command(
    address: Annotated[str, typer.Argument(help="The address to take off the list's mail.")],
    category: CategoryOption,
    partner: PartnerOption,
    by: ByOption = None,
) -> None:
    """Stop one partner's optional mail of one category to ADDRESS, as its unsubscribe link
    does (reason unsubscribed, source cli); mail it gets by role still goes."""
    normalised, chosen = _address(address), _category(category)
    actor = _actor(by)
    added = _with_list(
        lambda listing: listing.unsubscribe(normalised, chosen, partner, "cli", actor)
    )
    typer.echo(f"{'unsubscribed' if added else 'already unsubscribed'}: {normalised} ({chosen})")


@suppressions_app.command("resubscribe")
def resubscribe_command(
    address: Annotated[str, typer.Argument(help="The address to mail again.")],
    category: CategoryOption,
    partner: PartnerOption,
    by: ByOption = None,
) -> None:
    """Undo an unsubscribe of ADDRESS from one category of one partner."""
    normalised, chosen = _address(address), _category(category)
    actor = _actor(by)
    removed = _with_list(
        lambda listing: listing.resubscribe(normalised, chosen, partner, "cli", actor)
    )
    typer.echo(f"{'resubscribed' if removed else 'was not unsubscribed'}: {normalised} ({chosen})")


@suppressions_app.command("export")
def export_command(file: Annotated[Path, typer.Argument(help="The CSV file to write.")]) -> None:
    """Write the list as CSV with a header row (the columns `import` reads)."""
    entries = _with_list(lambda listing: listing.entries())
    try:
        with file.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([*FIELDS, "expires_at"])
            for entry in entries:
                writer.writerow(
                    [
                        entry.address,
                        entry.scope,
                        entry.reason,
                        entry.source,
                        entry.evidence or "",
                        entry.created_at.isoformat(),
                        entry.created_by,
                        "" if entry.expires_at is None else entry.expires_at.isoformat(),
                    ]
                )
    except OSError as exc:
        _fail(f"cannot write {file}: {exc.strerror or exc}")
    typer.echo(f"exported {len(entries)} suppression(s) to {file}")


def _timestamp(value: str, line: int) -> datetime | None:
    if not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        _fail(f"line {line}: not an ISO 8601 time: {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@suppressions_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="A CSV file with a header row.")],
    by: ByOption = None,
) -> None:
    """Add the addresses of a CSV file (a provider's list, or an export): the header names an
    `address` column (or `email`), and optionally `reason` (default manual), `created_at`,
    `scope`, `source`, `evidence`, `expires_at`. Every row is checked before any is added."""
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        _fail(f"cannot read {file}: {exc}")
    actor = _actor(by)
    parsed: list[dict[str, Any]] = []
    for line, row in enumerate(rows, start=2):
        fields = {(key or "").strip().lower(): (value or "") for key, value in row.items()}
        raw = fields.get("address") or fields.get("email")
        if not raw:
            _fail(f"line {line}: no address (the header must name an `address` column)")
        if not is_addr_spec(raw.strip()):
            _fail(f"line {line}: not an email address (RFC 5322 addr-spec): {raw.strip()!r}")
        reason = (fields.get("reason") or "manual").strip().lower()
        reason = _REASON_ALIASES.get(reason, reason)
        if reason not in REASONS:
            _fail(f"line {line}: unknown reason {reason!r}: one of {', '.join(REASONS)}")
        parsed.append(
            {
                "address": normalise_address(raw.strip()),
                "reason": reason,
                "source": (fields.get("source") or "import").strip(),
                "created_by": (fields.get("created_by") or actor).strip(),
                "evidence": fields.get("evidence") or None,
                "scope": (fields.get("scope") or "all").strip(),
                "created_at": _timestamp(fields.get("created_at", ""), line),
                "expires_at": _timestamp(fields.get("expires_at", ""), line),
            }
        )

    async def work(listing: SuppressionList) -> int:
        added = 0
        for entry in parsed:
            added += await listing.add(**entry, note=f"imported from {file.name} by {actor}")
        return added

    added = _with_list(work)
    typer.echo(f"imported {added} new suppression(s) of {len(parsed)} row(s) from {file}")
