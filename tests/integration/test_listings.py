"""The listing commands as scripts and people read them (issue 22), with the real `herald`
binary, broker and ledger, its output piped (not a terminal):

- identifiers print whole in an 80-column terminal and when piped, whatever their length;
- `--format json` is one document on stdout, its times ISO 8601 with `T` and an offset;
- `replay show` takes an unambiguous prefix; `replay audit` prints its JSON readably;
- an unknown `--reason` is an error naming the valid ones, on one line however narrow the
  terminal; `replay requeue` reports its progress on stderr every few seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from herald.consumers.topology import DEAD_LETTER_QUEUE
from herald.ledger.store import SqlLedger
from tests.integration.conftest import Broker
from tests.integration.test_replay import HERALD, dead_letter_ids, event, herald_dead_letter
from tests.support import herald_command, record_sent

pytestmark = pytest.mark.integration
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")
LONG_ID = "evt-" + "0123456789abcdef" * 6  # 100 characters: wider than the terminal


async def herald(
    amqp_url: str, database_url: str, *args: str, columns: int = 80
) -> tuple[int, str, str]:
    """Run `herald *args` with stdout and stderr piped, in a terminal `columns` wide."""
    return await herald_command(
        *args,
        HERALD_AMQP_URL=amqp_url,
        HERALD_DATABASE_URL=database_url,
        HERALD_OPERATOR="sre-test",
        COLUMNS=str(columns),
    )


@pytest.fixture
def database_path(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/herald.db"


async def dead_letters_with_ids(broker: Broker, *ids: str) -> list[dict[str, Any]]:
    """Valid `orders.quote.created` events dead-lettered by Herald, with these ids."""
    documents = []
    for event_id in ids:
        document = event("orders.quote.created")
        document["id"] = event_id
        await herald_dead_letter(broker, document, "schema_violation")
        documents.append(document)
    return documents


async def test_dead_letter_ids_print_whole_in_80_columns_and_piped(
    amqp_url: str, database_path: str, broker: Broker
) -> None:
    # Given dead letters with UUIDs and one id wider than the terminal
    ids = [str(uuid.uuid4()), str(uuid.uuid4()), LONG_ID]
    await dead_letters_with_ids(broker, *ids)
    for columns in (80, 250):
        # When listed and dry-run requeued, piped, 80 and 250 columns wide
        for args in (("replay", "list"), ("replay", "requeue", "--dry-run")):
            code, output, said = await herald(amqp_url, database_path, *args, columns=columns)
            assert code == 0, said
            # Then every id is there verbatim, none cut
            for event_id in ids:
                assert event_id in output, (columns, args, output)
            assert "…" not in output
            # and every time is ISO 8601 with T and an offset
            if args == ("replay", "list"):
                times = re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", output)
                assert len(times) == len(ids), output
    assert await dead_letter_ids(broker) == ids


async def test_deliveries_find_prints_whole_message_ids_and_iso_times(
    amqp_url: str, database_path: str
) -> None:
    # Given two sent deliveries in the ledger, with Message-IDs as Herald makes them
    ledger = await SqlLedger.open(database_path)
    try:
        message_ids = [f"<{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}@herald.localhost>" for _ in "ab"]
        await record_sent(ledger, "key-1", "jonas@bluepeak.example", message_ids[0])
        await record_sent(ledger, "key-2", "sara.holm@operator.example", message_ids[1])
    finally:
        await ledger.close()
    for columns in (80, 250):
        # When support looks the event up, piped, 80 and 250 columns wide
        code, output, said = await herald(
            amqp_url, database_path, "deliveries", "find", "--event-id", "evt-1", columns=columns
        )
        assert code == 0, said
        # Then both Message-IDs and addresses are whole, and the times ISO 8601
        for text in (*message_ids, "jonas@bluepeak.example", "sara.holm@operator.example"):
            assert text in output, (columns, output)
        assert "…" not in output
        assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", output), output
    # And the JSON is one document whose times are ISO 8601 with T and an offset
    code, output, said = await herald(
        amqp_url, database_path, "deliveries", "find", "--event-id", "evt-1", "--format", "json"
    )
    assert code == 0, said
    records = json.loads(output)
    assert {record["message_id"] for record in records} == set(message_ids)
    for record in records:
        for name in ("first_attempt_at", "last_attempt_at", "completed_at"):
            assert ISO_TIME.match(record[name]), record[name]


async def test_replay_show_takes_an_unambiguous_prefix(
    amqp_url: str, database_path: str, broker: Broker
) -> None:
    # Given three dead letters, two of whose ids start alike
    first, second, third = (f"{prefix}-{uuid.uuid4()}" for prefix in ("abc", "abc", "xyz"))
    await dead_letters_with_ids(broker, first, second, third)
    # When shown by a prefix only one id starts with: that one
    code, output, said = await herald(amqp_url, database_path, "replay", "show", "xyz")
    assert code == 0, said
    assert third in output and "x-reject-reason" in output and '"id": "' + third in output
    # An exact id, and the JSON document of it
    code, output, said = await herald(
        amqp_url, database_path, "replay", "show", first, "--format", "json"
    )
    assert code == 0, said
    shown = json.loads(output)
    assert (shown["id"], shown["reason"], shown["body"]["id"]) == (
        first,
        "schema_violation",
        first,
    )
    assert ISO_TIME.match(shown["properties"]["timestamp"])
    assert shown["body"]["data"]["quote"]["id"] == "QT-2025-0712"
    # An ambiguous prefix: exit 2, naming how many match
    code, output, said = await herald(amqp_url, database_path, "replay", "show", "abc")
    assert code == 2 and output == ""
    assert said.startswith("herald: 2 dead letters have an id starting with 'abc'"), said
    # None: exit 1
    code, _, said = await herald(amqp_url, database_path, "replay", "show", "nope")
    assert code == 1 and "no dead letter with id 'nope'" in said
    # Nothing was consumed, and reading the whole queue kept its order
    assert await dead_letter_ids(broker) == [first, second, third]


async def test_replay_audit_prints_its_objects_readably(
    amqp_url: str, database_path: str, broker: Broker
) -> None:
    await dead_letters_with_ids(broker, str(uuid.uuid4()))
    code, _, said = await herald(
        amqp_url, database_path, "replay", "requeue", "--dry-run", "--type", "orders.*"
    )
    assert code == 0, said
    # The table: filters and counts as `key: value` lines, not JSON
    code, output, said = await herald(amqp_url, database_path, "replay", "audit", columns=160)
    assert code == 0, said
    assert "type_glob: orders.*" in output and "requeued: 1" in output
    assert "still_invalid: 0" in output and '{"' not in output
    # The JSON: the objects themselves, times ISO 8601 with T and an offset
    code, output, said = await herald(
        amqp_url, database_path, "replay", "audit", "--format", "json"
    )
    assert code == 0, said
    (entry,) = json.loads(output)
    assert entry["filters"] == {"type_glob": "orders.*"} and entry["counts"]["requeued"] == 1
    assert ISO_TIME.match(entry["started_at"]) and ISO_TIME.match(entry["finished_at"])


@pytest.mark.parametrize(
    "args",
    [
        ["replay", "list"],
        ["replay", "requeue"],
        ["replay", "purge", "--yes"],
        ["replay", "export", "{out}"],
    ],
)
async def test_an_unknown_reason_is_an_error_on_one_line(
    amqp_url: str, database_path: str, broker: Broker, tmp_path: Path, args: list[str]
) -> None:
    (document,) = await dead_letters_with_ids(broker, str(uuid.uuid4()))
    out = tmp_path / "out.jsonl"
    command = [arg.format(out=out) for arg in args]
    # A typo in --reason, in a terminal 40 columns wide
    code, output, said = await herald(
        amqp_url, database_path, *command, "--reason", "schema_violaton", columns=40
    )
    # is an error naming the valid reasons, on one line; nothing was touched
    assert code == 2 and output == ""
    assert said.count("\n") == 1, said
    assert said.startswith("herald: unknown --reason 'schema_violaton': one of "), said
    assert "schema_violation" in said and "delivery_limit" in said
    assert not out.exists()
    assert await dead_letter_ids(broker) == [document["id"]]


async def test_requeue_reports_progress_on_stderr_when_not_a_terminal(
    amqp_url: str, database_path: str, broker: Broker
) -> None:
    # Given 26 valid dead letters and no Herald consuming
    await dead_letters_with_ids(broker, *(str(uuid.uuid4()) for _ in range(26)))
    # When requeued at 4 a second (about 6.5 s), stderr piped
    code, output, said = await herald(
        amqp_url, database_path, "replay", "requeue", "--rate", "4", "--format", "json"
    )
    assert code == 0, said
    # Then stderr had a progress line about every 5 s, with the total, the rate and the ETA
    lines = said.splitlines()
    assert lines, "no progress at all"
    for line in lines:
        match = re.fullmatch(r"requeued (\d+)/26, (\d+\.\d)/s, about (\d+s|\d+m) left", line)
        assert match, line
        assert 10 <= int(match.group(1)) < 26 and 2.0 <= float(match.group(2)) <= 4.5
    # and stdout only the JSON document
    assert json.loads(output)["counts"]["requeued"] == 26
    assert await broker.queue_depth(DEAD_LETTER_QUEUE) == 0


async def test_requeue_shows_a_bar_with_the_total_on_a_terminal(
    amqp_url: str, database_path: str, broker: Broker
) -> None:
    # Given 12 valid dead letters, and stderr a terminal
    await dead_letters_with_ids(broker, *(str(uuid.uuid4()) for _ in range(12)))
    terminal, child_side = pty.openpty()
    env = {
        **os.environ,
        "HERALD_AMQP_URL": amqp_url,
        "HERALD_DATABASE_URL": database_path,
        "TERM": "xterm-256color",
        "COLUMNS": "100",
    }
    process = await asyncio.create_subprocess_exec(
        HERALD,
        "replay",
        "requeue",
        "--rate",
        "6",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=child_side,
    )
    os.close(child_side)
    chunks: list[bytes] = []

    def read_terminal() -> None:
        while True:
            try:
                data = os.read(terminal, 4096)
            except OSError:  # EIO: the child side closed
                return
            if not data:
                return
            chunks.append(data)

    reader = asyncio.create_task(asyncio.to_thread(read_terminal))
    try:
        # When requeued at 6 a second (2 s)
        stdout, _ = await asyncio.wait_for(process.communicate(), timeout=60)
        await asyncio.wait_for(reader, timeout=10)
    finally:
        os.close(terminal)
    assert process.returncode == 0
    # Then the terminal showed the bar with the count of the total
    shown = b"".join(chunks).decode(errors="replace")
    assert re.search(r"requeued .* \d+/12", shown), shown[-2000:]
    assert "requeued 12" in stdout.decode()
