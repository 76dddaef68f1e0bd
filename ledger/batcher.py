"""Group commit: the ledger's units of work, queued by many concurrent deliveries, run many to
one transaction.

A transaction's fixed cost (pool checkout, BEGIN, COMMIT, the driver's thread hops) is paid once
per batch instead of once per unit: under load, whatever queued while one transaction ran goes
into the next. Urgent work (recording that an email was accepted) is taken first, so the window
between the server's 250 and its record stays short. A batch that fails is rolled back and each
of its units is run again in a transaction of its own, so one bad unit fails only itself.

Units are functions of a connection that only run statements: running one again after a
rollback is safe.

On SQLite a whole batch runs in one dedicated thread on a plain `sqlite3` connection
(`SyncBatches`): one thread hop per transaction instead of one per statement, which is what
aiosqlite costs. A unit only ever awaits `connection.execute(...)`, so in that thread it is driven
to completion without an event loop.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

Work = Callable[[AsyncConnection], Awaitable[Any]]
# Called with how long a unit took (queueing included) and its error, if any.
Observer = Callable[[float, BaseException | None], None]
# Raises when the ledger must not be used (its SQLite file was deleted or replaced).
Guard = Callable[[], None]

URGENT = 0
NORMAL = 1


@dataclass(order=True)
class _Job:
    priority: int
    order: int
    work: Work = field(compare=False)
    future: asyncio.Future[Any] = field(compare=False)
    queued_at: float = field(compare=False)


class GroupCommit:
    def __init__(
        self,
        engine: AsyncEngine,
        runners: int,
        max_batch: int = 32,
        translate: Callable[[Exception], Exception] | None = None,
        sync: SyncBatches | None = None,
        guard: Guard | None = None,
    ) -> None:
        self._engine = engine
        self._sync = sync
        self._guard = guard
        self._runners_wanted = runners
        self._max_batch = max_batch
        self._translate = translate or (lambda exc: exc)
        self._queue: list[_Job] = []
        self._order = itertools.count()
        self._ready: asyncio.Event | None = None
        self._runners: list[asyncio.Task[None]] = []
        self.observe: Observer | None = None
        # Called with each unit's error, or None (the ledger's health).
        self.outcome: Callable[[BaseException | None], None] | None = None

    async def run(self, work: Work, priority: int = NORMAL) -> Any:
        """Queue `work`; its result (or its error) once its transaction has committed."""
        return await self.submit(work, priority)

    def submit(self, work: Work, priority: int = NORMAL) -> asyncio.Future[Any]:
        """Queue `work` now; the future completes once its transaction has committed. The work
        is skipped only if this future is cancelled before its batch starts."""
        loop = asyncio.get_running_loop()
        self._start_runners()
        future: asyncio.Future[Any] = loop.create_future()
        heapq.heappush(
            self._queue, _Job(priority, next(self._order), work, future, time.perf_counter())
        )
        assert self._ready is not None
        self._ready.set()
        return future

    async def close(self) -> None:
        for runner in self._runners:
            runner.cancel()
        if self._runners:
            await asyncio.wait(self._runners)
        self._runners.clear()
        for job in self._queue:
            if not job.future.done():
                job.future.set_exception(RuntimeError("the ledger is closed"))
        self._queue.clear()
        if self._sync is not None:
            await self._sync.close()

    def _start_runners(self) -> None:
        if self._runners:
            return
        self._ready = asyncio.Event()
        self._runners = [
            asyncio.create_task(self._runner(), name=f"ledger-runner-{index}")
            for index in range(self._runners_wanted)
        ]

    def _take_batch(self) -> list[_Job]:
        """The next batch: urgent units alone when any wait (their transaction is short, so
        an email's record follows its 250 closely), else up to `max_batch` units."""
        batch: list[_Job] = []
        urgent_first = bool(self._queue) and self._queue[0].priority == URGENT
        while self._queue and len(batch) < self._max_batch:
            if urgent_first and self._queue[0].priority != URGENT:
                break
            job = heapq.heappop(self._queue)
            if not job.future.done():  # a caller cancelled before its turn: skip the work
                batch.append(job)
        return batch

    async def _runner(self) -> None:
        assert self._ready is not None
        while True:
            if not self._queue:
                self._ready.clear()
                await self._ready.wait()
            batch = self._take_batch()
            if batch:
                await self._run_batch(batch)

    async def _run_batch(self, batch: list[_Job]) -> None:
        try:
            results = await self._transaction(batch)
        except asyncio.CancelledError:
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(RuntimeError("the ledger is closed"))
            raise
        except Exception as exc:
            if len(batch) == 1:
                self._finish(batch[0], error=self._translate(exc))
                return
            for job in batch:  # isolate the failure: each unit on its own
                await self._run_batch([job])
            return
        for job, result in zip(batch, results, strict=True):
            self._finish(job, result=result)

    async def _transaction(self, batch: list[_Job]) -> list[Any]:
        if self._guard is not None:  # before any connection is taken (or a file created)
            self._guard()
        if self._sync is not None:
            return await self._sync.run([job.work for job in batch])
        async with self._engine.begin() as connection:
            return [await job.work(connection) for job in batch]

    def _finish(self, job: _Job, result: Any = None, error: Exception | None = None) -> None:
        if self.observe is not None:
            self.observe(time.perf_counter() - job.queued_at, error)
        if self.outcome is not None:
            self.outcome(error)
        if job.future.done():
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)


class SyncBatches:
    """Run batches of units on a synchronous engine, in one thread of their own."""

    def __init__(self, engine: Engine, guard: Guard | None = None) -> None:
        self._engine = engine
        self._guard = guard
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="herald-ledger")

    async def run(self, works: list[Work]) -> list[Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._transaction, works)

    def _transaction(self, works: list[Work]) -> list[Any]:
        with self._engine.begin() as connection:
            adapter = cast(AsyncConnection, _ExecuteOnly(connection))
            results = [_drive(cast(Coroutine[Any, Any, Any], work(adapter))) for work in works]
            if self._guard is not None:  # the last moment before the commit: no record may
                self._guard()  # land in a deleted or replaced file (rolled back instead)
            return results

    async def close(self) -> None:
        """Let a batch in progress commit, then close (off the event loop)."""
        await asyncio.to_thread(self._thread.shutdown, True)
        await asyncio.to_thread(self._engine.dispose)


class _ExecuteOnly:
    """What a unit sees of its connection in the ledger thread: `await execute(...)`, run
    synchronously (SQLAlchemy buffers async results too, so they behave the same)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        if parameters is None:
            return self._connection.execute(statement)
        return self._connection.execute(statement, parameters)


def _drive(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends to its result, without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a ledger unit awaited something other than connection.execute")
