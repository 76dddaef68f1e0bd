"""The ledger's health: a SQLite file deleted or replaced under it fails every operation closed
(and no new file appears); a PostgreSQL ledger that cannot be reached is reported unhealthy by
the periodic probe and healthy again once it answers."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

from herald.ledger.store import LedgerUnavailable, SqlLedger
from tests.conftest import POSTGRES_ADMIN_DSN

pytestmark = pytest.mark.integration


def _remove_ledger_files(directory: Path) -> None:
    for file in directory.glob("herald.db*"):  # the operator's `rm herald.db*`
        file.unlink()


async def _until(condition: object, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_a_sqlite_file_deleted_or_replaced_fails_every_operation_closed(
    tmp_path: Path, how: str
) -> None:
    path = tmp_path / "herald.db"
    ledger = await SqlLedger.open(f"sqlite:///{path}")
    try:
        assert not await ledger.is_processed("/s", "before")
        assert ledger.health.ok
        _remove_ledger_files(tmp_path)
        if how == "replaced":
            other = await SqlLedger.open(f"sqlite:///{tmp_path / 'other.db'}")
            await other.close()
            os.rename(tmp_path / "other.db", path)
        with pytest.raises(LedgerUnavailable, match=f"SQLite file {path} was {how}"):
            await ledger.settle((), processed=("/s", "after", "orders.quote.created"))
        with pytest.raises(LedgerUnavailable):
            await ledger.is_processed("/s", "after")  # and for good: it never comes back
        assert not ledger.health.ok
        assert ledger.health.problem == f"ledger: SQLite file {path} was {how}"
        assert path.exists() == (how == "replaced"), "no new, empty file is created"
    finally:
        await ledger.close()


async def test_the_watch_notices_a_deleted_file_without_traffic(tmp_path: Path) -> None:
    path = tmp_path / "herald.db"
    ledger = await SqlLedger.open(f"sqlite:///{path}")
    failed: list[str] = []
    ledger.health.on_failed_check = failed.append
    ledger.start_health_watch(interval=0.1)
    try:
        await asyncio.sleep(0.3)
        assert ledger.health.ok and failed == []
        path.unlink()
        assert await _until(lambda: not ledger.health.ok)
        assert await _until(lambda: "file_deleted" in failed)
        assert not path.exists()
    finally:
        await ledger.close()


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def test_an_unreachable_postgresql_ledger_is_unhealthy_until_it_answers() -> None:
    name = f"herald_health_{uuid.uuid4().hex[:8]}"
    await _admin(f'CREATE DATABASE "{name}"')
    ledger = await SqlLedger.open(f"{POSTGRES_ADMIN_DSN.rsplit('/', 1)[0]}/{name}")
    failed: list[str] = []
    ledger.health.on_failed_check = failed.append
    ledger.start_health_watch(interval=0.1, timeout=2)
    try:
        await asyncio.sleep(0.3)
        assert ledger.health.ok
        await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await _admin(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"  # noqa: S608
        )
        assert await _until(lambda: not ledger.health.ok)
        assert ledger.health.problem is not None
        assert ledger.health.problem.startswith("ledger unavailable (")
        assert name not in ledger.health.problem and "postgres" not in ledger.health.problem
        assert "unavailable" in failed
        await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert await _until(lambda: ledger.health.ok, timeout=15)
        assert not await ledger.is_processed("/s", "x")
    finally:
        await ledger.close()
        await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
