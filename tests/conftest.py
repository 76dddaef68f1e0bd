"""Fixtures for the real services on this machine: a fresh RabbitMQ vhost and a fresh
PostgreSQL database per test session, and an aiosmtpd server in the test process.

These never skip: when a service is missing the tests fail (CI starts the services first).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from herald.ledger.store import SqlLedger

POSTGRES_ADMIN_DSN = os.environ.get(
    "HERALD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
RUN_ID = uuid.uuid4().hex[:10]


# RabbitMQ ------------------------------------------------------------------------------------


def _rabbitmqctl(*args: str, stdin: bytes | None = None) -> str:
    """Run rabbitmqctl; its standard output. Debian's wrapper runs as the rabbitmq user, so
    input from a test's private files goes through `stdin`."""
    executable = shutil.which("rabbitmqctl")
    if executable is None:
        pytest.fail("rabbitmqctl is not installed: integration tests need the local RabbitMQ")
    done = subprocess.run(
        [executable, *args], input=stdin, check=True, capture_output=True, timeout=60
    )
    return done.stdout.decode()


@pytest.fixture
def scratch_vhosts() -> Iterator[Callable[[str], str]]:
    """Make fresh vhosts (named `<prefix>-<random>`, guest may do anything) for one test;
    all are deleted afterwards."""
    made: list[str] = []

    def make(prefix: str) -> str:
        vhost = f"{prefix}-{uuid.uuid4().hex[:8]}"
        _rabbitmqctl("add_vhost", vhost)
        made.append(vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return vhost

    yield make
    for vhost in made:
        with contextlib.suppress(subprocess.CalledProcessError):
            _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A vhost of our own, so runs never see each other's messages."""
    vhost = f"herald-test-{RUN_ID}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    _rabbitmqctl("delete_vhost", vhost)


# PostgreSQL ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    database = f"herald_test_{RUN_ID}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{database}"'))
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]
    yield f"{base}/{database}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/herald.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[SqlLedger]:
    store = await SqlLedger.open(database_url)
    await _truncate(store)
    yield store
    await store.close()


async def _truncate(store: SqlLedger) -> None:
    from herald.ledger.tables import deliveries, processed_events, suppression_audit, suppressions

    async with store._engine.begin() as connection:
        await connection.execute(deliveries.delete())
        await connection.execute(processed_events.delete())
        await connection.execute(suppressions.delete())
        await connection.execute(suppression_audit.delete())


# SMTP ----------------------------------------------------------------------------------------


@dataclass
class Received:
    envelope_from: str
    recipients: list[str]
    content: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpServer:
    host: str
    port: int
    received: list[Received] = field(default_factory=list)
    # Replies to give instead of 250, consumed in order (e.g. "451 try later").
    scripted_replies: list[str] = field(default_factory=list)
    # Replies to RCPT TO for these addresses (e.g. "550 5.1.1 no such user"), every time.
    refused_recipients: dict[str, str] = field(default_factory=dict)

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.received) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"expected {count} emails, the SMTP server received {len(self.received)}"
                )
            await asyncio.sleep(0.02)
        return self.received


class _CollectingHandler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, _server: Any, _session: Any, envelope: Envelope, address: str, _options: Any
    ) -> str:
        refusal = self.server.refused_recipients.get(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Envelope) -> str:
        if self.server.scripted_replies:
            return self.server.scripted_replies.pop(0)
        self.server.received.append(
            Received(
                envelope_from=str(envelope.mail_from),
                recipients=list(envelope.rcpt_tos),
                content=envelope.original_content or b"",
            )
        )
        return "250 OK queued"


def start_smtp_server(port: int) -> tuple[SmtpServer, Controller]:
    server = SmtpServer(host="127.0.0.1", port=port)
    controller = Controller(_CollectingHandler(server), hostname=server.host, port=server.port)
    controller.start()
    return server, controller


@pytest.fixture
def smtp_server(unused_tcp_port: int) -> Iterator[SmtpServer]:
    server, controller = start_smtp_server(unused_tcp_port)
    yield server
    controller.stop()
