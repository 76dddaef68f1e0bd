"""A crash between a bounce report and its ledger write loses nothing (issue 18): `herald run`
armed with HERALD_FAULT_AT=feedback_before_record exits while the DSN is in hand, so the
sending MTA gets no 250 and keeps it; after a restart without the fault the same DSN is
recorded, once, however often it is sent again."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from herald.senders.return_path import ReturnPath
from tests.faults.harness import (
    HERALD,
    Mailbox,
    publish,
    quote_events,
    run_id,
    sqlite_url,
    start_herald,
    stop_herald,
    wait_for_mail,
)
from tests.feedback_mail import dsn

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CRASHED = 70  # herald/faultpoints.py EXIT_CODE
DOMAIN = "bounces.operator.example"
SECRET = "fault-suite-bounce-secret"


async def cli(database_url: str, *args: str) -> Any:
    process = await asyncio.create_subprocess_exec(
        HERALD,
        *args,
        "--format",
        "json",
        env={**os.environ, "HERALD_DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    return json.loads(stdout)


async def send_report(port: int, verp: str) -> int:
    """Mail a DSN for `verp` as an MTA would; the reply code to DATA."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10)
    async with client:
        await client.ehlo()
        await client.mail("")
        await client.rcpt(verp)
        return (await client.data(dsn(verp))).code


async def test_a_crash_before_the_ledger_write_loses_no_report(
    vhost_url: str, tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    database_url = sqlite_url(tmp_path)
    bounce_port = unused_tcp_port_factory()
    bounce_env = {
        "HERALD_BOUNCE_DOMAIN": DOMAIN,
        "HERALD_BOUNCE_SECRET": SECRET,
        "HERALD_BOUNCE_SMTP_HOST": "127.0.0.1",
        "HERALD_BOUNCE_SMTP_PORT": str(bounce_port),
    }
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    http_port = unused_tcp_port_factory()
    # Given Herald armed to exit between reading a report and recording it, and one email sent
    herald = await start_herald(
        vhost_url,
        mailbox,
        database_url,
        tmp_path,
        http_port,
        HERALD_FAULT_AT="feedback_before_record",
        **bounce_env,
    )
    try:
        (event,) = quote_events(1, run_id())
        await publish(vhost_url, [event])
        await wait_for_mail(mailbox, 1, timeout=30)
        (mail,) = mailbox.received
        verp = ReturnPath(DOMAIN, SECRET.encode()).address(mail.message_id.strip("<>")[:20])
        for _ in range(100):  # the ledger records the 250 just after it
            (row,) = await cli(database_url, "deliveries", "find", "--event-id", event["id"])
            if row["status"] == "sent":
                break
            await asyncio.sleep(0.1)
        assert row["status"] == "sent"

        # When a DSN for it arrives, Herald crashes before the ledger write: no 250
        with pytest.raises(aiosmtplib.SMTPException):
            await send_report(bounce_port, verp)
        assert herald.process is not None
        assert await asyncio.wait_for(herald.process.wait(), 30) == CRASHED
        (row,) = await cli(database_url, "deliveries", "find", "--event-id", event["id"])
        assert row["status"] == "sent"
        assert await cli(database_url, "suppressions", "list") == []

        # Then the MTA's retry after a restart without the fault is recorded, and only once
        herald = await start_herald(
            vhost_url, mailbox, database_url, tmp_path, http_port, **bounce_env
        )
        assert await send_report(bounce_port, verp) == 250
        assert await send_report(bounce_port, verp) == 250
        (row,) = await cli(database_url, "deliveries", "find", "--event-id", event["id"])
        assert row["status"] == "bounced"
        suppressions = await cli(database_url, "suppressions", "list")
        assert len(suppressions) == 1
        assert suppressions[0]["reason"] == "hard_bounce"
    finally:
        await stop_herald(herald)
        mailbox.stop()
