"""Each fault scenario gets its own RabbitMQ vhost (and, where it needs one, its own PostgreSQL
database), so leftovers of one scenario can never count in another."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator

import asyncpg
import pytest

from tests.conftest import POSTGRES_ADMIN_DSN


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
