"""A newcomer's first run (issue 22): `herald run --dev-smtp` says once what it is connected to
and what to do next, the command it prints publishes an example that lands in the outbox, and
the outbox's index lists what was sent. Real subprocesses of `herald` on a fresh vhost."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from html import escape
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
HERALD = str(Path(sys.executable).parent / "herald")
STARTED = "herald started"


def _env(amqp_url: str, tmp_path: Path, http_port: int) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    return {
        **environment,
        "HERALD_AMQP_URL": amqp_url,
        "HERALD_DATABASE_URL": f"sqlite:///{tmp_path}/herald.db",
        "HERALD_HTTP_HOST": "127.0.0.1",
        "HERALD_HTTP_PORT": str(http_port),
        "HERALD_SHUTDOWN_GRACE_SECONDS": "5",
    }


async def _start(env: dict[str, str], cwd: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        HERALD,
        "run",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _summary(process: asyncio.subprocess.Process) -> tuple[str, dict[str, Any]]:
    """The start-up summary's JSON line (raw and parsed); fails on any other start-up line
    that is neither JSON nor the plain block after it."""
    assert process.stderr is not None
    async with asyncio.timeout(60):
        while True:
            raw = (await process.stderr.readline()).decode()
            assert raw, "herald run exited before its start-up summary"
            entry = json.loads(raw)  # every line before the summary is a JSON log line
            if entry["message"].startswith(STARTED):
                return raw, entry


async def _stop(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()[-2000:]
    return stderr.decode()


async def test_run_dev_smtp_says_where_it_is_connected_and_its_publish_command_works(
    tmp_path: Path,
    scratch_vhosts: Callable[[str], str],
    unused_tcp_port_factory: Callable[[], int],
) -> None:
    # Given herald run --dev-smtp on a fresh vhost (the broker URL carries guest's password)
    vhost = scratch_vhosts("herald-first-run")
    http, smtp = unused_tcp_port_factory(), unused_tcp_port_factory()
    env = _env(f"amqp://guest:guest@127.0.0.1:5672/{vhost}", tmp_path, http)
    process = await _start(env, tmp_path, "--dev-smtp", "--dev-smtp-port", str(smtp))
    try:
        # When it has started
        raw, summary = await _summary(process)
        assert process.stderr is not None
        block = []
        async with asyncio.timeout(10):
            while not block or block[-1].strip() != "stop:                Ctrl-C":
                block.append((await process.stderr.readline()).decode())

        # Then one JSON line names the broker, ledger, SMTP sink, metrics and the next step,
        # without the password, a URL or user@host
        assert summary["level"] == "info"
        assert summary["broker"] == f"127.0.0.1:5672 vhost {vhost}"
        assert summary["ledger"] == f"SQLite {tmp_path}/herald.db"
        assert summary["smtp"] == f"127.0.0.1:{smtp}"
        assert summary["metrics"] == f"127.0.0.1:{http}/metrics"
        assert summary["http_port"] == http
        assert summary["outbox"] == "outbox/"
        assert summary["publish_command"] == f"{HERALD} publish-example orders.order.placed"
        for part in (f"127.0.0.1:5672 vhost {vhost}", f"SQLite {tmp_path}/herald.db"):
            assert part in summary["message"]
        assert f"127.0.0.1:{smtp} (dev sink writing to outbox/)" in summary["message"]
        assert "publish-example orders.order.placed" in summary["message"]
        assert "guest:guest" not in raw and "guest@" not in raw and "://" not in raw
        # and, on --dev-smtp, a plain block for a person, with the URLs to open
        text = "".join(block)
        assert block[0] == "Herald is running.\n", text
        assert f"amqp://guest@127.0.0.1:5672 (vhost {vhost})" in text
        assert f"http://127.0.0.1:{http}/metrics" in text
        assert "guest:guest" not in text
        assert "outbox/index.html" in text

        # When the printed command is run as it stands, from the same folder and environment
        publisher = await asyncio.create_subprocess_exec(
            *shlex.split(summary["publish_command"]),
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, said = await asyncio.wait_for(publisher.communicate(), timeout=60)
        assert publisher.returncode == 0, said.decode()

        # Then the example's emails (order placer, vendor account manager) reach the outbox,
        # each with its HTML part beside it, and the index lists them
        outbox = tmp_path / "outbox"
        for _ in range(300):
            if (outbox / "index.html").read_text("utf-8").count('.eml">') >= 2:
                break
            await asyncio.sleep(0.1)
        index = (outbox / "index.html").read_text("utf-8")
        emails = sorted(outbox.glob("*.eml"))
        assert len(emails) == 2
        for email in emails:
            message = message_from_bytes(email.read_bytes(), policy=policy.default)
            assert isinstance(message, EmailMessage)
            html = message.get_body(preferencelist=("html",))
            assert html is not None
            assert email.with_suffix(".html").read_bytes() == html.get_payload(decode=True)
            assert f'href="{email.stem}.html"' in index
            assert f'href="{email.name}"' in index
            assert escape(str(message["Subject"])) in index
    finally:
        stderr = await _stop(process)
    assert stderr.count(STARTED) == 0  # the rest of stderr: the summary was given once


async def test_without_a_terminal_or_dev_smtp_the_summary_is_the_json_line_only(
    tmp_path: Path,
    scratch_vhosts: Callable[[str], str],
    unused_tcp_port_factory: Callable[[], int],
) -> None:
    http = unused_tcp_port_factory()
    env = _env(
        f"amqp://guest:guest@127.0.0.1:5672/{scratch_vhosts('herald-first-run')}", tmp_path, http
    )
    env["HERALD_SMTP_PORT"] = str(unused_tcp_port_factory())  # nothing is sent
    process = await _start(env, tmp_path)
    try:
        _, summary = await _summary(process)
        assert "outbox" not in summary
        assert summary["smtp"] == f"127.0.0.1:{env['HERALD_SMTP_PORT']}"
    finally:
        stderr = await _stop(process)
    assert "Herald is running." not in stderr
    for line in stderr.splitlines():
        json.loads(line)  # nothing but JSON lines when no person is watching
