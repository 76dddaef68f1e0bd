"""How the listing commands print (issue 22): tables whose identifiers are never cut, ISO 8601
times, JSON documents, the plain progress line; and `catalog` and `suppressions list` in an
80-column terminal."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from herald.service.cli import app
from herald.service.cli_output import iso, json_default
from herald.service.progress import PlainProgress, duration
from herald.service.tables import Column, print_table
from tests import support

MESSAGE_ID = "<376307d075a1843c096f58624298e013d7e0850f@herald.localhost>"
COLUMNS = (
    Column("notification", whole=True),
    Column("status"),
    Column("Message-ID", whole=True),
    Column("detail"),
)


def printed(width: int, rows: list[tuple[str, ...]]) -> str:
    console = Console(file=io.StringIO(), width=width)
    print_table(console, "deliveries", COLUMNS, rows)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return text


def test_a_table_keeps_its_identifiers_whole_and_wraps_the_rest() -> None:
    detail = "250 2.0.0 Ok: queued as 4XyZ with a long reply the server chose to send"
    text = printed(110, [("order_confirmation_new", "sent", MESSAGE_ID, detail)])
    assert "┏" in text  # a table
    assert MESSAGE_ID in text and "order_confirmation_new" in text
    assert "…" not in text and "4XyZ" in text  # the detail wrapped, not cut


def test_too_narrow_a_table_becomes_one_block_per_row() -> None:
    text = printed(80, [("order_confirmation_new", "sent", MESSAGE_ID, "OK")] * 2)
    assert "┏" not in text
    assert text.count(f"Message-ID    {MESSAGE_ID}\n") == 2
    assert text.count("notification  order_confirmation_new\n") == 2
    # wider than the terminal: still whole, on one line
    long_id = "x" * 120
    assert f"Message-ID    {long_id}\n" in printed(80, [("n", "sent", long_id, "OK")])


def test_times_are_iso_8601_with_t_and_an_offset() -> None:
    at = datetime(2026, 12, 7, 13, 5, 0, 123456, tzinfo=UTC)
    assert iso(at) == "2026-12-07T13:05:00+00:00"
    assert iso(at.replace(tzinfo=None)) == "2026-12-07T13:05:00+00:00"  # the ledger's UTC
    assert iso(date(2026, 12, 7)) == "2026-12-07" and iso(None) == ""
    document = json.loads(
        json.dumps(
            {"at": at, "on": date(2026, 12, 7), "n": Decimal("1.5"), "raw": b"\xff"},
            default=json_default,
        )
    )
    assert document == {
        "at": "2026-12-07T13:05:00.123456+00:00",
        "on": "2026-12-07",
        "n": "1.5",
        "raw": {"base64": "/w=="},
    }


def test_the_plain_progress_line_every_few_seconds() -> None:
    now = [100.0]
    lines: list[str] = []
    progress = PlainProgress("requeued", lines.append, interval=5, clock=lambda: now[0])
    progress.start(600)
    for _ in range(120):  # 2 a second for a minute
        now[0] += 0.5
        progress.advance(1)
    assert lines == [
        f"requeued {done}/600, 2.0/s, about {duration((600 - done) / 2)} left"
        for done in range(10, 121, 10)
    ]
    assert lines[-1] == "requeued 120/600, 2.0/s, about 4m left"
    assert (duration(44.6), duration(61), duration(3700)) == ("45s", "2m", "1h 2m")


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("HERALD_DATABASE_URL", f"sqlite:///{tmp_path}/herald.db")
    monkeypatch.setenv("COLUMNS", "80")
    return CliRunner()


def test_catalog_ids_print_whole_in_80_columns(runner: CliRunner) -> None:
    result = runner.invoke(app, ["catalog"])
    assert result.exit_code == 0, result.output
    for spec in support.catalog():  # in a table or a block of lines, but whole
        assert re.search(rf"(?<!\w){spec.id}(?!\w)", result.stdout), spec.id
    assert "…" not in result.stdout
    listed = json.loads(runner.invoke(app, ["catalog", "--format", "JSON"]).stdout)
    assert [row["id"] for row in listed] == [spec.id for spec in support.catalog()]
    wrong = runner.invoke(app, ["catalog", "--format", "yaml"])
    assert (
        wrong.exit_code == 2 and wrong.stderr == "herald: --format is table or json, not 'yaml'\n"
    )


def test_suppressions_list_prints_addresses_and_scopes_whole_in_80_columns(
    runner: CliRunner,
) -> None:
    address = "procurement.department@northwind-health.example"
    result = runner.invoke(
        app,
        ["suppressions", "unsubscribe", address, "--category", "renewals", "--partner", "org-1204"],
    )
    assert result.exit_code == 0, result.output
    listed = runner.invoke(app, ["suppressions", "list"])
    assert listed.exit_code == 0, listed.output
    assert address in listed.stdout and "category:renewals/partner:org-1204" in listed.stdout
    assert "…" not in listed.stdout
