"""`herald suppressions` on a SQLite ledger: add, list, remove, export and import round trip,
and the errors (a bad address, an unknown reason) as one plain line with exit code 2."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from herald.ledger.records import NewDelivery, Settlement
from herald.ledger.store import SqlLedger
from herald.ledger.suppressions import SuppressionList
from herald.service.cli import app


@pytest.fixture
def herald(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("HERALD_DATABASE_URL", f"sqlite:///{tmp_path}/herald.db")
    monkeypatch.setenv("HERALD_OPERATOR", "sre-test")
    return CliRunner()


def listed(herald: CliRunner, *args: str) -> list[dict[str, object]]:
    result = herald.invoke(app, ["suppressions", "list", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    entries: list[dict[str, object]] = json.loads(result.stdout)
    return entries


def test_add_list_remove(herald: CliRunner) -> None:
    added = herald.invoke(
        app, ["suppressions", "add", "Jane@Example.COM", "--reason", "manual", "--note", "t-7"]
    )
    assert added.exit_code == 0, added.output
    again = herald.invoke(app, ["suppressions", "add", "Jane@example.com", "--by", "ops"])
    assert "already listed" in again.stdout
    (entry,) = listed(herald)
    assert (entry["address"], entry["reason"], entry["source"], entry["created_by"]) == (
        "Jane@example.com",
        "manual",
        "cli",
        "sre-test",
    )
    assert str(entry["created_at"]).endswith("+00:00")
    assert listed(herald, "--address", "jane@EXAMPLE.com") == []  # the local part as given
    assert len(listed(herald, "--reason", "manual", "--since", "1h")) == 1
    assert listed(herald, "--reason", "hard_bounce") == []
    removed = herald.invoke(app, ["suppressions", "remove", "Jane@example.com", "--by", "ops"])
    assert removed.exit_code == 0 and "removed 1" in removed.stdout
    assert listed(herald) == []


def test_export_and_import_round_trip(herald: CliRunner, tmp_path: Path) -> None:
    for address in ("a@example.com", "b@example.com"):
        assert herald.invoke(app, ["suppressions", "add", address]).exit_code == 0
    exported = tmp_path / "list.csv"
    assert herald.invoke(app, ["suppressions", "export", str(exported)]).exit_code == 0
    before = listed(herald)
    assert exported.read_text().splitlines()[0].startswith("address,scope,reason")
    for address in ("a@example.com", "b@example.com"):
        herald.invoke(app, ["suppressions", "remove", address])
    imported = herald.invoke(app, ["suppressions", "import", str(exported)])
    assert imported.exit_code == 0, imported.output
    assert "imported 2 new" in imported.stdout
    after = listed(herald)
    keep = ("address", "scope", "reason", "source", "created_at", "created_by")
    assert [{k: e[k] for k in keep} for e in after] == [{k: e[k] for k in keep} for e in before]


def test_import_accepts_a_providers_list(herald: CliRunner, tmp_path: Path) -> None:
    provider = tmp_path / "provider.csv"
    provider.write_text(
        "Email,Reason,Created_At\n"
        "x@Bounce.example,bounce,2026-01-02T03:04:05Z\n"
        "y@spam.example,spamreport,\n"
        "z@plain.example,,\n"
    )
    result = herald.invoke(app, ["suppressions", "import", str(provider), "--by", "ops"])
    assert result.exit_code == 0, result.output
    entries = {e["address"]: e for e in listed(herald)}
    assert entries["x@bounce.example"]["reason"] == "hard_bounce"
    assert entries["x@bounce.example"]["created_at"] == "2026-01-02T03:04:05+00:00"
    assert entries["y@spam.example"]["reason"] == "complaint"
    assert entries["z@plain.example"]["reason"] == "manual"
    assert {e["source"] for e in entries.values()} == {"import"}


@pytest.mark.parametrize(
    "args",
    [
        ["add", "not an address"],
        ["add", "a@example.com\nBcc: b@example.com"],
        ["add", "a@example.com", "--reason", "annoyed"],
        ["remove", "a@@example.com"],
        ["list", "--reason", "annoyed"],
        ["list", "--format", "xml"],
        ["list", "--since", "yesterday"],
    ],
)
def test_errors_are_one_plain_line_and_exit_2(herald: CliRunner, args: list[str]) -> None:
    result = herald.invoke(app, ["suppressions", *args])
    assert result.exit_code == 2
    assert result.stderr.startswith("herald: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_an_import_with_a_bad_row_adds_nothing(herald: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("address,reason\na@example.com,manual\nnot-an-address,manual\n")
    result = herald.invoke(app, ["suppressions", "import", str(bad)])
    assert result.exit_code == 2
    assert (
        result.stderr == "herald: line 3: not an email address (RFC 5322 addr-spec): "
        "'not-an-address'\n"
    )
    assert listed(herald) == []


def test_deliveries_find_shows_a_blocked_delivery_and_its_suppression(
    herald: CliRunner, tmp_path: Path
) -> None:
    async def record() -> None:
        ledger = await SqlLedger.open(f"sqlite:///{tmp_path}/herald.db")
        try:
            await SuppressionList(ledger).add("a@example.com", "hard_bounce", "smtp", "herald")
            new = NewDelivery(
                "k" * 64, "order_placed", "email", "/s", "e-1", "a@example.com", "<m>"
            )
            await ledger.claim_many([new], timedelta(minutes=1))
            await ledger.settle([Settlement(new.key, "blocked", "suppressed: hard_bounce")])
        finally:
            await ledger.close()

    asyncio.run(record())
    result = herald.invoke(app, ["deliveries", "find", "--event-id", "e-1", "--format", "json"])
    assert result.exit_code == 0, result.output
    (found,) = json.loads(result.stdout)
    assert (found["status"], found["detail"]) == ("blocked", "suppressed: hard_bounce")
    assert found["suppression"]["reason"] == "hard_bounce"
    assert found["suppression"]["source"] == "smtp"


SCOPE_OPTIONS = ("--category", "renewals", "--partner", "org-1204")


def test_unsubscribe_shows_in_the_list_with_its_scope_and_resubscribe_removes_it(
    herald: CliRunner,
) -> None:
    done = herald.invoke(
        app,
        ["suppressions", "unsubscribe", "List@BluePeak.example", *SCOPE_OPTIONS],
    )
    assert done.exit_code == 0, done.output
    (entry,) = listed(herald, "--reason", "unsubscribed")
    assert (entry["address"], entry["reason"], entry["scope"], entry["source"]) == (
        "List@bluepeak.example",
        "unsubscribed",
        "category:renewals/partner:org-1204",
        "cli",
    )
    undone = herald.invoke(
        app,
        ["suppressions", "resubscribe", "List@bluepeak.example", *SCOPE_OPTIONS],
    )
    assert undone.exit_code == 0 and "resubscribed" in undone.stdout
    assert listed(herald) == []


def test_unsubscribe_refuses_an_unknown_category(herald: CliRunner) -> None:
    done = herald.invoke(
        app,
        ["suppressions", "unsubscribe", "a@example.com", "--category", "news", "--partner", "p"],
    )
    assert done.exit_code == 2
    assert "unknown category 'news'" in done.output
