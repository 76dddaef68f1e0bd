"""Each fault scenario gets its own RabbitMQ vhost (and, where it needs one, its own PostgreSQL
database), so leftovers of one scenario can never count in another."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
import pytest

from tests.conftest import POSTGRES_ADMIN_DSN
from tests.faults.broker_node import BrokerNode
from tests.faults.harness import Counts

MakeBroker = Callable[..., Awaitable[BrokerNode]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The scenarios' own servers (aiosmtpd threads, proxies) may leave a socket of a client
    they were talking to (a Herald that was killed) to the garbage collector, after their loop
    closed; that is the test rig's, not a fault of Herald's, and must not fail a later test."""
    for item in items:
        if "tests/faults/" in str(item.path):
            item.add_marker(
                pytest.mark.filterwarnings(
                    r"ignore:Exception ignored in. <(function (StreamWriter|_SelectorTransport)"
                    r"\.__del__|socket\.socket):pytest.PytestUnraisableExceptionWarning"
                )
            )


@pytest.fixture
def vhost_url(scratch_vhosts: Callable[[str], str]) -> str:
    return f"amqp://guest:guest@127.0.0.1:5672/{scratch_vhosts('herald-fault')}"


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def fresh_postgres() -> Iterator[tuple[str, str]]:
    """(url, database name) of a new database, dropped afterwards."""
    name = f"herald_fault_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]
    yield f"{base}/{name}", name
    asyncio.run(_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Record a scenario's counts line (and any extra measurements); every line is printed in
    the terminal summary, also from xdist workers (it travels in the test's report)."""

    def show(name: str, counts: Counts, *extra: str) -> None:
        line = counts.line(name) + "".join(f" {item}" for item in extra)
        request.node.user_properties.append(("fault scenario", line))

    return show


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = [
        f"{value}  [{report.outcome}]"
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for key, value in getattr(report, "user_properties", ())
        if key in ("fault scenario", "private node")
    ]
    if lines:
        terminalreporter.section("fault scenarios")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
async def private_broker(
    unused_tcp_port_factory: Callable[[], int], request: pytest.FixtureRequest
) -> AsyncIterator[MakeBroker]:
    """Start a private RabbitMQ node (tests/faults/broker_node.py) for faults that hit a whole
    broker: `await private_broker(config=[...], advanced="...")`. Stopped and deleted after."""
    nodes: list[BrokerNode] = []

    async def make(config: list[str] | None = None, advanced: str | None = None) -> BrokerNode:
        node = BrokerNode(
            unused_tcp_port_factory(), unused_tcp_port_factory(), config or [], advanced
        )
        nodes.append(node)
        await node.start()
        request.node.user_properties.append(
            (
                "private node",
                f"private RabbitMQ node {node.name} started in {node.started_in:.1f} s",
            )
        )
        return node

    yield make
    for node in nodes:
        await asyncio.to_thread(node.stop)
