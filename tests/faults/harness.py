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
from aiosmtpd.smtp import SMTP, Envelope

from herald.consumers.topology import EVENTS_EXCHANGE
from herald.schemas.examples import load_example

HERALD = str(Path(sys.executable).parent / "herald")


# The mail server -----------------------------------------------------------------------------


@dataclass
class Mail:
    recipient: str
    notification: str
    message_id: str
    content: str = ""  # the whole message as received


@dataclass
class Mailbox:
    """An aiosmtpd server that records every accepted message; it can refuse on demand."""

    port: int
    received: list[Mail] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)  # replies to give to DATA first
    refuse: Callable[[str], str | None] = lambda _address: None  # RCPT -> reply or None
    authenticate: Callable[[], bool] | None = None  # None: no AUTH offered
    controller: Controller | None = None
    # Seconds to wait before the 220 greeting of each next connection, consumed in order.
    greeting_delays: list[float] = field(default_factory=list)
    # Seconds to wait before answering each next DATA, consumed in order. A message whose
    # client hung up meanwhile is not recorded: its transaction never completed.
    data_delays: list[float] = field(default_factory=list)
    # How many next messages to take, record, and then drop the connection before the 250.
    drop_after_data: int = 0
    idle_timeout: float = 300.0  # seconds before the server closes an idle connection
    connections: int = 0
    timed_out: int = 0  # connections the server closed for idleness
    sessions: list[SMTP] = field(default_factory=list)

    def start(self) -> None:
        handler = _Handler(self)
        options: dict[str, Any] = {"timeout": self.idle_timeout}
        if self.authenticate is not None:
            check = self.authenticate
            options |= {
                "authenticator": lambda *_args: bool(check()),
                "auth_require_tls": False,
            }
        self.controller = _Controller(
            self, handler, hostname="127.0.0.1", port=self.port, **options
        )
        self.controller.start()
        self.connections = 0  # not the controller's own readiness probe

    def stop(self) -> None:
        if self.controller is not None:
            # Close the connections still open (a client stuck mid-conversation), so the
            # server's loop does not end with live transports.
            loop = self.controller.loop
            for session in self.sessions:
                if session.transport is not None:
                    loop.call_soon_threadsafe(session.transport.close)
            self.controller.stop()
            self.controller = None
            self.sessions.clear()


class _Smtp(SMTP):
    def __init__(self, mailbox: Mailbox, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mailbox = mailbox

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.mailbox.sessions.append(self)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        if self in self.mailbox.sessions:
            self.mailbox.sessions.remove(self)

    async def _handle_client(self) -> None:
        self.mailbox.connections += 1
        if self.mailbox.greeting_delays:
            await asyncio.sleep(self.mailbox.greeting_delays.pop(0))
        await super()._handle_client()

    def _timeout_cb(self) -> None:
        self.mailbox.timed_out += 1
        super()._timeout_cb()


class _Controller(Controller):
    def __init__(self, mailbox: Mailbox, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mailbox = mailbox

    def factory(self) -> SMTP:
        return _Smtp(self.mailbox, self.handler, **self.SMTP_kwargs)


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

    async def handle_DATA(self, server: Any, _session: Any, envelope: Envelope) -> str:
        if self.mailbox.replies:
            return self.mailbox.replies.pop(0)
        if self.mailbox.data_delays:
            await asyncio.sleep(self.mailbox.data_delays.pop(0))
            if server.transport is None or server.transport.is_closing():
                return "451 4.4.2 client gone"  # never sent: nobody is listening
        self._record(envelope)
        if self.mailbox.drop_after_data > 0:
            self.mailbox.drop_after_data -= 1
            server.transport.close()  # accepted, but the 250 never reaches the client
        return "250 OK queued"

    def _record(self, envelope: Envelope) -> None:
        content = (envelope.original_content or b"").decode("utf-8", "replace")
        headers = content.split("\r\n\r\n", 1)[0]
        fields = dict(
            line.split(": ", 1) for line in headers.split("\r\n") if ": " in line and line[0] != " "
        )
        for recipient in envelope.rcpt_tos:
            self.mailbox.received.append(
                Mail(
                    recipient,
                    fields.get("X-Herald-Notification", ""),
                    fields.get("Message-ID", ""),
                    content,
                )
            )


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
    """Quote events, one email each to its recipient. `failed`: recipients the scenario
    expects to be refused for good (recorded, not lost)."""
    expected = Counter(event["data"]["quote"]["recipient"]["email"] for event in events)
    return account_expected(expected, mailbox, failed)


def account_expected(
    expected: Counter[str], mailbox: Mailbox, failed: set[str] | None = None
) -> Counts:
    """`expected`: how many emails each address should get (Counter of addresses)."""
    failed = failed or set()
    copies = Counter(mail.recipient for mail in mailbox.received)
    message_ids: dict[str, set[str]] = {}
    for mail in mailbox.received:
        message_ids.setdefault(mail.recipient, set()).add(mail.message_id)
    wanted = {address: count for address, count in expected.items() if address not in failed}
    return Counts(
        expected=len(expected),
        received=len(mailbox.received),
        lost=sum(max(0, count - copies.get(address, 0)) for address, count in wanted.items()),
        duplicated=sum(
            max(0, copies[address] - expected.get(address, 0))
            for address in copies
            if address in wanted
        ),
        duplicates_share_message_id=all(
            len(message_ids[address]) <= expected.get(address, 1) for address in message_ids
        ),
        unexpected=len(set(copies) - set(expected)) + len(set(copies) & failed),
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


# Scenario helpers ----------------------------------------------------------------------------


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory}/herald.db"


async def start_herald(
    amqp_url: str,
    mailbox: Mailbox,
    database_url: str,
    directory: Path,
    port: int,
    ready: bool = True,
    **extra: str,
) -> HeraldProcess:
    """A `herald run` subprocess; waits for /readyz unless `ready` is False."""
    process = HeraldProcess(
        herald_env(amqp_url, mailbox.port, database_url, port, **extra), directory, port
    )
    await process.start()
    if ready:
        await process.wait_ready()
    return process


async def stop_herald(process: HeraldProcess) -> None:
    """SIGTERM a process still running (a scenario may have crashed it already)."""
    if process.process is not None and process.process.returncode is None:
        try:
            await process.terminate()
        except TimeoutError:
            await process.kill()


def assert_no_loss(counts: Counts, duplicates_allowed: bool = False) -> None:
    assert counts.lost == 0, counts
    assert counts.unexpected == 0, counts
    if duplicates_allowed:
        assert counts.duplicates_share_message_id, counts
    else:
        assert counts.duplicated == 0, counts


async def poll(condition: Callable[[], Any], timeout: float, interval: float = 0.1) -> bool:
    """Wait until `condition()` (sync or async) is true; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)


async def metric(process: HeraldProcess, name: str, labels: str = "") -> float | None:
    """One sample of Herald's /metrics, e.g. `metric(p, "herald_queue_consumers",
    'queue="herald.orders"')`; None when absent or unreachable."""
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            text = (await client.get(f"http://127.0.0.1:{process.http_port}/metrics")).text
    except httpx.HTTPError:
        return None
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def queue_depth(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def dead_letters(amqp_url: str, queue: str = "herald.dead-letter") -> list[dict[str, Any]]:
    """Every message of the dead-letter queue (message_id and headers), consumed: call it at
    the end of a scenario."""
    found: list[dict[str, Any]] = []
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        source = await channel.declare_queue(queue, passive=True)
        while (message := await source.get(no_ack=True, fail=False)) is not None:
            found.append({"message_id": message.message_id, "headers": dict(message.headers)})
    return found


def order_events(count: int, run: str, lines: int = 0) -> list[dict[str, Any]]:
    """`orders.order.placed` events (partner portal, several recipients each), every address
    unique to its event; `lines` > 0 grows the order to that many lines (a heavy render)."""
    template = load_example("orders.order.placed")
    events = []
    for index in range(count):
        document = copy.deepcopy(template)
        document["id"] = f"{run}-{index}"
        _unique_addresses(document, f"{run}.{index}")
        if lines:
            first = document["data"]["order"]["lines"][0]
            for words in range(12, 0, -1):  # as large as the 256 KiB limit on a body allows
                document["data"]["order"]["lines"] = [
                    {**first, "id": f"ln-{number}", "product_name": f"Room kit {number} " * words}
                    for number in range(lines)
                ]
                if len(json.dumps(document).encode()) < 262_144 - 256:
                    break
        events.append(document)
    return events


def _unique_addresses(value: Any, tag: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "email" and isinstance(item, str):
                local, _, domain = item.partition("@")
                value[key] = f"{local}.{tag}@{domain}"
            else:
                _unique_addresses(item, tag)
    elif isinstance(value, list):
        for item in value:
            _unique_addresses(item, tag)


def expected_emails(events: list[dict[str, Any]]) -> Counter[str]:
    """Who should get an email, by Herald's own catalog (no config file: no directory)."""
    from herald.catalog.plan import plan_event
    from herald.service.app import build_catalog_and_templates
    from tests.support import event_of

    catalog, _ = build_catalog_and_templates()
    return Counter(
        delivery.recipient.email
        for event in events
        for delivery in plan_event(event_of(event), catalog, {}).deliveries
    )
