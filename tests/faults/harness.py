"""Fault-injection harness: real `herald run` processes, the real broker, a real SMTP server.

A scenario publishes a known set of events (each one `orders.quote.created` addressed to its
own recipient, so exactly one email each), injects a fault, waits until every email is
accounted for, and reports `lost`, `duplicated` (and whether duplicates share a Message-ID)
and `unexpected`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from consumers.topology import EVENTS_EXCHANGE
from schemas.examples import load_example

HERALD = str(Path(sys.executable).parent / "herald")


# The mail server -----------------------------------------------------------------------------


@dataclass
class Mail:
    recipient: str
    notification: str
    message_id: str


@dataclass
class Mailbox:
    """An aiosmtpd server that records every accepted message; it can refuse on demand."""

    port: int
    received: list[Mail] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)  # replies to give to DATA first
    refuse: Callable[[str], str | None] = lambda _address: None  # RCPT -> reply or None
    authenticate: Callable[[], bool] | None = None  # None: no AUTH offered
    controller: Controller | None = None

    def start(self) -> None:
        handler = _Handler(self)
        options: dict[str, Any] = {}
        if self.authenticate is not None:
            check = self.authenticate
            options = {
                "authenticator": lambda *_args: bool(check()),
                "auth_require_tls": False,
            }
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


class _Handler:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_RCPT(
        self, _server: Any, _session: Any, envelope: Envelope, address: str, _options: Any
    ) -> str:
        refusal = self.mailbox.refuse(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Envelope) -> str:
        if self.mailbox.replies:
            return self.mailbox.replies.pop(0)
        content = (envelope.original_content or b"").decode("utf-8", "replace")
        headers = content.split("\r\n\r\n", 1)[0]
        fields = dict(
            line.split(": ", 1) for line in headers.split("\r\n") if ": " in line and line[0] != " "
        )
        for recipient in envelope.rcpt_tos:
            self.mailbox.received.append(
                Mail(
                    recipient, fields.get("X-Herald-Notification", ""), fields.get("Message-ID", "")
                )
            )
        return "250 OK queued"


# Herald processes ----------------------------------------------------------------------------


@dataclass
class HeraldProcess:
    env: dict[str, str]
    cwd: Path
    http_port: int
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        log = (self.cwd / f"herald-{self.http_port}.log").open("ab")  # kept for debugging
        self.process = await asyncio.create_subprocess_exec(
            HERALD,
            "run",
            env=self.env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
        log.close()

    async def readyz(self) -> int:
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                return (await client.get(f"http://127.0.0.1:{self.http_port}/readyz")).status_code
        except httpx.HTTPError:
            return 0

    async def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while await self.readyz() != 200:
            if time.monotonic() > deadline:
                raise AssertionError("herald did not become ready")
            await asyncio.sleep(0.1)

    async def terminate(self, timeout: float = 40) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        await self.process.wait()


def herald_env(
    amqp_url: str, smtp_port: int, database_url: str, http_port: int, **extra: str
) -> dict[str, str]:
    return {
        **os.environ,
        "HERALD_AMQP_URL": amqp_url,
        "HERALD_SMTP_HOST": "127.0.0.1",
        "HERALD_SMTP_PORT": str(smtp_port),
        "HERALD_SMTP_FROM": "Herald <notifications@operator.example>",
        "HERALD_DATABASE_URL": database_url,
        "HERALD_HTTP_PORT": str(http_port),
        "HERALD_HTTP_HOST": "127.0.0.1",
        "HERALD_SMTP_RETRY_BASE_SECONDS": "0.05",
        "HERALD_SMTP_TIMEOUT_SECONDS": "3",
        "HERALD_RETRY_DELAYS_MS": "[300, 1000, 2000]",
        "HERALD_SHUTDOWN_GRACE_SECONDS": "10",
        "HERALD_SCHEDULER_INTERVAL_SECONDS": "5",
        "HERALD_LOG_LEVEL": "INFO",
        **extra,
    }


# Events and accounting -----------------------------------------------------------------------


def quote_events(count: int, run: str) -> list[dict[str, Any]]:
    template = load_example("orders.quote.created")
    events = []
    for index in range(count):
        document = copy.deepcopy(template)
        document["id"] = f"{run}-{index}"
        document["data"]["quote"]["recipient"]["email"] = f"r{index}.{run}@load.example"
        events.append(document)
    return events


async def publish(amqp_url: str, events: list[dict[str, Any]], delay: float = 0.0) -> None:
    """Publish like an upstream service: persistent, confirmed, retried on a lost confirm."""
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        # Herald declared the topology when it started; a fault may strike at any moment here.
        exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
        for document in events:
            message = aio_pika.Message(
                json.dumps(document).encode(),
                content_type="application/cloudevents+json",
                message_id=document["id"],
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            for attempt in range(60):
                try:
                    await exchange.publish(message, routing_key=document["type"], timeout=10)
                    break
                except Exception:
                    if attempt == 59:
                        raise
                    await asyncio.sleep(0.5)  # broker away: republish the same id
            if delay:
                await asyncio.sleep(delay)


@dataclass
class Counts:
    expected: int
    received: int
    lost: int
    duplicated: int
    duplicates_share_message_id: bool
    unexpected: int
    failed_recorded: int = 0

    def line(self, name: str) -> str:
        return (
            f"fault scenario {name}: expected={self.expected} received={self.received} "
            f"lost={self.lost} duplicated={self.duplicated} "
            f"(same Message-ID: {'yes' if self.duplicates_share_message_id else 'no'}) "
            f"unexpected={self.unexpected} failed_recorded={self.failed_recorded}"
        )


def account(
    events: list[dict[str, Any]], mailbox: Mailbox, failed: set[str] | None = None
) -> Counts:
    """`failed`: recipients the scenario expects to be refused for good (recorded, not lost)."""
    failed = failed or set()
    expected = {event["data"]["quote"]["recipient"]["email"] for event in events}
    copies = Counter(mail.recipient for mail in mailbox.received)
    message_ids: dict[str, set[str]] = {}
    for mail in mailbox.received:
        message_ids.setdefault(mail.recipient, set()).add(mail.message_id)
    delivered = set(copies)
    return Counts(
        expected=len(expected),
        received=len(mailbox.received),
        lost=len(expected - delivered - failed),
        duplicated=sum(count - 1 for count in copies.values() if count > 1),
        duplicates_share_message_id=all(len(ids) == 1 for ids in message_ids.values()),
        unexpected=len(delivered - expected) + len(delivered & failed),
        failed_recorded=len(failed),
    )


async def wait_for_mail(mailbox: Mailbox, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len({mail.recipient for mail in mailbox.received}) < count:
        if time.monotonic() > deadline:
            return  # the accounting reports what is missing
        await asyncio.sleep(0.1)


def run_id() -> str:
    return uuid.uuid4().hex[:8]
