"""Failures an operator meets, seen as the operator sees them: the real `herald` binary in a
subprocess against the real broker, ledger and ports. Each ends in exactly one line on stderr
(one JSON record for `herald run`, whose stderr is JSON lines) naming what failed and where, and
the exit code of README "Exit codes"; never a traceback. Also: `--version`, the warning for a
typo'd `HERALD_*` variable, and the SMTP-down log line naming the server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from herald.service.app import build_service
from herald.tools.publish import publish_examples
from tests.conftest import SmtpServer
from tests.integration.conftest import service_settings

pytestmark = pytest.mark.integration

HERALD = str(Path(sys.executable).parent / "herald")


def herald(
    tmp_path: Path, *args: str, timeout: float = 90, **variables: str
) -> subprocess.CompletedProcess[str]:
    """Run `herald ARGS` in `tmp_path` with only these HERALD_* variables set."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HERALD_")}
    env["HERALD_DATABASE_URL"] = f"sqlite:///{tmp_path}/herald.db"
    env.update(variables)
    return subprocess.run(
        [HERALD, *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (nothing on stdout, no traceback)."""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{done.stderr}"
    assert lines[0].startswith("herald: "), lines[0]
    return lines[0]


def json_records(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """Every stderr line of `herald run` parsed as JSON (each must be)."""
    lines = done.stderr.splitlines()
    assert lines, "herald run wrote nothing on stderr"
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line on herald run's stderr: {line!r}\n{done.stderr}")
    return records


def fatal(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The last record of a failed `herald run`: the one critical record, why it stopped."""
    records = json_records(done)
    critical = [record for record in records if record["level"] == "critical"]
    assert critical == [records[-1]], done.stderr
    return records[-1]


@pytest.fixture
def port_in_use() -> Iterator[int]:
    """A port on 127.0.0.1 that something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


# The broker ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("topology", "declare"),
        ("publish-example", "orders.order.placed"),
        ("replay", "list"),
        ("replay", "requeue", "--type", "orders.*"),
    ],
)
def test_broker_unreachable_names_host_port_and_exits_3(
    tmp_path: Path, unused_tcp_port: int, command: tuple[str, ...]
) -> None:
    done = herald(
        tmp_path,
        *command,
        HERALD_AMQP_URL=f"amqp://guest:secret-pw@127.0.0.1:{unused_tcp_port}/",
    )
    line = one_line(done)
    assert done.returncode == 3, done.stderr
    assert f"127.0.0.1:{unused_tcp_port}" in line
    assert "connection refused" in line
    assert "vhost /" in line and "user guest" in line
    assert "secret-pw" not in line


def test_a_vhost_that_does_not_exist_is_named_and_exits_3(tmp_path: Path) -> None:
    vhost = f"herald-missing-{uuid.uuid4().hex[:8]}"
    done = herald(
        tmp_path, "topology", "declare", HERALD_AMQP_URL=f"amqp://guest:guest@127.0.0.1/{vhost}"
    )
    line = one_line(done)
    assert done.returncode == 3, done.stderr
    assert line == (
        "herald: cannot connect to the broker: the vhost does not exist or the user has no "
        "access to it "
        f"(127.0.0.1:5672, vhost {vhost}, user guest)"
    )


def test_run_against_a_closed_broker_port_stays_json_and_exits_3(
    tmp_path: Path, unused_tcp_port: int
) -> None:
    done = herald(
        tmp_path,
        "run",
        HERALD_AMQP_URL=f"amqp://guest:guest@127.0.0.1:{unused_tcp_port}/",
        HERALD_AMQP_CONNECT_ATTEMPTS="2",
        HERALD_HTTP_HOST="127.0.0.1",
        HERALD_HTTP_PORT="0",
    )
    assert done.returncode == 3, done.stderr
    record = fatal(done)
    assert f"127.0.0.1:{unused_tcp_port}" in record["message"]
    assert record["exit_code"] == 3
    assert record["where"] == f"127.0.0.1:{unused_tcp_port}, vhost /, user guest"


# The ledger ------------------------------------------------------------------------------------


def test_an_unreachable_postgresql_ledger_is_named_and_exits_4(
    tmp_path: Path, unused_tcp_port: int
) -> None:
    done = herald(
        tmp_path,
        "reminders",
        "list",
        HERALD_DATABASE_URL=f"postgresql://herald:secret-pw@127.0.0.1:{unused_tcp_port}/herald",
    )
    line = one_line(done)
    assert done.returncode == 4, done.stderr
    assert line.startswith("herald: cannot open the ledger: ")
    assert line.endswith(f"(PostgreSQL 127.0.0.1:{unused_tcp_port}, database herald, user herald)")
    assert "secret-pw" not in line


def test_a_sqlite_ledger_in_a_missing_folder_is_named_and_exits_4(tmp_path: Path) -> None:
    path = tmp_path / "no-such-folder" / "herald.db"
    done = herald(tmp_path, "reminders", "list", HERALD_DATABASE_URL=f"sqlite:///{path}")
    line = one_line(done)
    assert done.returncode == 4, done.stderr
    assert line == f"herald: cannot open the ledger: unable to open database file (SQLite {path})"


def test_run_with_an_unreachable_ledger_stays_json_and_exits_4(tmp_path: Path) -> None:
    path = tmp_path / "no-such-folder" / "herald.db"
    done = herald(tmp_path, "run", HERALD_DATABASE_URL=f"sqlite:///{path}")
    assert done.returncode == 4, done.stderr
    record = fatal(done)
    assert record["where"] == f"SQLite {path}"
    assert record["exit_code"] == 4


# Listening -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listener", "setting", "variables"),
    [
        ("metrics and probes", "HERALD_HTTP_PORT", {}),
        (
            "the public listener",
            "HERALD_PUBLIC_HTTP_PORT",
            {"HERALD_PUBLIC_HTTP_HOST": "127.0.0.1"},
        ),
        (
            "the bounce listener",
            "HERALD_BOUNCE_SMTP_PORT",
            {
                "HERALD_BOUNCE_SMTP_HOST": "127.0.0.1",
                "HERALD_BOUNCE_DOMAIN": "bounces.operator.example",
                "HERALD_BOUNCE_SECRET": "a-secret-for-the-test",
            },
        ),
    ],
    ids=["metrics", "public", "bounces"],
)
def test_run_with_a_port_in_use_stays_json_and_exits_5(
    tmp_path: Path,
    port_in_use: int,
    amqp_url: str,
    listener: str,
    setting: str,
    variables: dict[str, str],
) -> None:
    ports = {"HERALD_HTTP_HOST": "127.0.0.1", "HERALD_HTTP_PORT": "0", setting: str(port_in_use)}
    done = herald(tmp_path, "run", HERALD_AMQP_URL=amqp_url, **ports, **variables)
    assert done.returncode == 5, done.stderr
    record = fatal(done)
    assert record["message"] == (
        f"{listener} cannot listen: address already in use (127.0.0.1:{port_in_use}, {setting})"
    )
    assert record["exit_code"] == 5


def test_dev_smtp_on_a_port_in_use_exits_5(tmp_path: Path, port_in_use: int) -> None:
    done = herald(tmp_path, "dev-smtp", "--port", str(port_in_use), timeout=30)
    line = one_line(done)
    assert done.returncode == 5, done.stderr
    assert line == (
        "herald: the dev SMTP sink cannot listen: address already in use "
        f"(127.0.0.1:{port_in_use}, --port)"
    )


def test_dev_smtp_on_a_port_that_does_not_exist_exits_5(tmp_path: Path) -> None:
    done = herald(tmp_path, "dev-smtp", "--port", "99999", timeout=30)
    line = one_line(done)
    assert done.returncode == 5, done.stderr
    assert line == (
        "herald: the dev SMTP sink cannot listen: not a port (0-65535) (127.0.0.1:99999, --port)"
    )


# Output folders --------------------------------------------------------------------------------


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder\n")
    return path


def _under_a_file(tmp_path: Path) -> Path:
    return _a_file(tmp_path) / "site"


@pytest.mark.parametrize("command", [("gallery",), ("schemas", "export")])
@pytest.mark.parametrize(
    ("where", "reason"),
    [(_a_file, "it is a file, not a folder"), (_under_a_file, "not a directory")],
    ids=["a file", "under a file"],
)
def test_an_output_folder_that_cannot_be_written_is_named_and_exits_6(
    tmp_path: Path,
    command: tuple[str, ...],
    where: Callable[[Path], Path],
    reason: str,
) -> None:
    path = where(tmp_path)
    done = herald(tmp_path, *command, str(path))
    line = one_line(done)
    assert done.returncode == 6, done.stderr
    assert line == f"herald: cannot write the output folder: {reason} ({path})"


def test_an_output_file_that_cannot_be_written_is_named_and_exits_6(tmp_path: Path) -> None:
    done = herald(tmp_path, "topology", "definitions", "--output", str(tmp_path))
    line = one_line(done)
    assert done.returncode == 6, done.stderr
    assert line == f"herald: cannot write: is a directory ({tmp_path})"


# Settings --------------------------------------------------------------------------------------


def test_an_unknown_log_level_is_a_configuration_error_naming_the_setting(
    tmp_path: Path,
) -> None:
    done = herald(tmp_path, "reminders", "list", HERALD_LOG_LEVEL="LOUD")
    line = one_line(done)
    assert done.returncode == 2, done.stderr
    assert "HERALD_LOG_LEVEL: unknown level 'LOUD'; one of DEBUG, INFO, WARNING, ERROR" in line


def test_run_warns_about_a_typo_and_stops_on_a_bad_level_in_json(tmp_path: Path) -> None:
    done = herald(tmp_path, "run", HERALD_LOG_LEVEL="LOUD", HERALD_SMPT_HOST="mail.example")
    assert done.returncode == 2, done.stderr
    warning, stop = json_records(done)
    assert warning["level"] == "warning"
    assert warning["variable"] == "HERALD_SMPT_HOST"
    assert warning["suggestion"] == "HERALD_SMTP_HOST"
    assert "did you mean HERALD_SMTP_HOST?" in warning["message"]
    assert stop["level"] == "critical" and stop["exit_code"] == 2
    assert "HERALD_LOG_LEVEL" in stop["message"]


def test_a_typo_in_a_variable_is_warned_about_with_the_closest_name(tmp_path: Path) -> None:
    done = herald(
        tmp_path,
        "reminders",
        "list",
        HERALD_SMPT_HOST="mail.example",
        HERALD_OPERATOR="sre-test",  # read by `herald replay`: not a typo
        HERALD_WEBHOOK_SECRET_BLUEPEAK_CATALOG="x",  # a webhook's secret: not a typo
    )
    assert done.returncode == 0, done.stderr
    assert one_line(done) == (
        "herald: warning: HERALD_SMPT_HOST is not a Herald setting and is ignored; "
        "did you mean HERALD_SMTP_HOST?"
    )


def test_version(tmp_path: Path) -> None:
    done = herald(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "herald 0.1.0"


# SMTP down -------------------------------------------------------------------------------------


async def test_the_smtp_down_log_line_names_the_server(
    scratch_vhosts: Callable[[str], str],
    unused_tcp_port: int,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given Herald on a vhost of its own (the event stays in a retry queue, away from other
    # tests) and a mail server that is not there
    vhost = scratch_vhosts("herald-smtp-down")
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    down = SmtpServer(host="127.0.0.1", port=unused_tcp_port)
    caplog.set_level(logging.WARNING, logger="herald.consumers.amqp")
    service = await build_service(
        service_settings(url, down, tmp_path, smtp_retry_base_seconds=0.001)
    )
    await service.start()
    try:
        # When an event is to be mailed
        await publish_examples(url, ["orders.order.placed"])
        deadline = asyncio.get_running_loop().time() + 20
        while not (retried := _transient(caplog)):
            assert asyncio.get_running_loop().time() < deadline, "no transient failure logged"
            await asyncio.sleep(0.05)
    finally:
        await service.stop()
    # Then the log line says which server is down, and no more than that
    error = str(retried[0].__dict__["error"])
    assert f"127.0.0.1:{unused_tcp_port}" in error
    assert error.startswith("TransientSendError: SMTP connection to 127.0.0.1:")


def _transient(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.getMessage() == "transient failure, retrying through the broker"
    ]
