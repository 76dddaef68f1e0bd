"""Group commit on a real SQLite file: many units to one transaction, urgent work first, a
failing unit fails alone, a cancelled caller's unit is skipped."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from herald.ledger.batcher import NORMAL, URGENT, GroupCommit, SyncBatches
from herald.ledger.engine import create_engine, sqlite_sync_engine


@pytest.fixture(params=["async engine", "ledger thread"])
async def batcher(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    async for commit in _batcher(tmp_path, request.param):
        yield commit


@pytest.fixture
async def thread_batcher(tmp_path: Path) -> Any:
    """The ledger-thread mode only: there a unit may block its runner without blocking the
    event loop, which the ordering tests need."""
    async for commit in _batcher(tmp_path, "ledger thread"):
        yield commit


async def _batcher(tmp_path: Path, mode: str) -> Any:
    url = f"sqlite:///{tmp_path}/batch.db"
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (v INTEGER PRIMARY KEY)"))
    sync = None
    if mode == "ledger thread":
        sync_engine = sqlite_sync_engine(url)
        assert sync_engine is not None
        sync = SyncBatches(sync_engine)
    commit = GroupCommit(engine, runners=1, max_batch=50, sync=sync)
    yield commit
    await commit.close()
    await engine.dispose()


def insert(value: int, log: list[int] | None = None) -> Any:
    async def work(connection: AsyncConnection) -> int:
        if log is not None:
            log.append(value)
        await connection.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
        return value

    return work


async def count(connection: AsyncConnection) -> int:
    return int((await connection.execute(text("SELECT count(*) FROM t"))).scalar_one())


async def test_concurrent_units_share_transactions(batcher: GroupCommit) -> None:
    transactions = 0
    original = batcher._transaction

    async def counting(batch: list[Any]) -> list[Any]:
        nonlocal transactions
        transactions += 1
        return await original(batch)

    batcher._transaction = counting  # type: ignore[method-assign]
    results = await asyncio.gather(*(batcher.run(insert(value)) for value in range(200)))
    assert results == list(range(200))
    assert await batcher.run(count) == 200
    assert transactions <= 10  # 200 units (+1) in batches of at most 50, not 201 transactions


def blocking_unit(release: threading.Event) -> Any:
    """A unit that holds the runner (in either mode) until `release` is set."""

    async def work(_: AsyncConnection) -> None:
        release.wait(timeout=5)  # blocks the runner's thread: only for these tests

    return work


async def test_urgent_units_go_first(thread_batcher: GroupCommit) -> None:
    batcher = thread_batcher
    order: list[int] = []
    blocker = threading.Event()
    first = asyncio.create_task(batcher.run(blocking_unit(blocker)))
    await asyncio.sleep(0.05)  # the runner is inside the first transaction now
    normal = [asyncio.create_task(batcher.run(insert(v, order), NORMAL)) for v in (1, 2)]
    urgent = asyncio.create_task(batcher.run(insert(3, order), URGENT))
    await asyncio.sleep(0.01)
    blocker.set()
    await asyncio.gather(first, *normal, urgent)
    assert order == [3, 1, 2]


async def test_a_failing_unit_fails_alone(batcher: GroupCommit) -> None:
    await batcher.run(insert(1))
    results = await asyncio.gather(
        batcher.run(insert(2)),
        batcher.run(insert(1)),  # primary key conflict
        batcher.run(insert(3)),
        return_exceptions=True,
    )
    assert results[0] == 2 and results[2] == 3
    assert isinstance(results[1], Exception)
    assert await batcher.run(count) == 3


async def test_a_cancelled_callers_unit_is_skipped(thread_batcher: GroupCommit) -> None:
    batcher = thread_batcher
    blocker = threading.Event()
    first = asyncio.create_task(batcher.run(blocking_unit(blocker)))
    await asyncio.sleep(0.05)
    cancelled = asyncio.create_task(batcher.run(insert(7)))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    blocker.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await batcher.run(count) == 0


async def test_observer_sees_every_unit(batcher: GroupCommit) -> None:
    seen: list[tuple[float, BaseException | None]] = []
    batcher.observe = lambda seconds, error: seen.append((seconds, error))
    await asyncio.gather(batcher.run(insert(1)), batcher.run(insert(1)), return_exceptions=True)
    assert len(seen) == 2
    assert [error is None for _, error in seen].count(True) == 1


async def test_a_unit_that_suspends_is_refused_in_the_ledger_thread(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/batch.db"
    sync_engine = sqlite_sync_engine(url)
    assert sync_engine is not None
    engine = create_engine(url)
    commit = GroupCommit(engine, runners=1, sync=SyncBatches(sync_engine))

    async def suspends(_: AsyncConnection) -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="awaited something other"):
        await commit.run(suspends)
    await commit.close()
    await engine.dispose()
