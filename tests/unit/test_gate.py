"""The ledger's priority gate: urgent work takes the next free connection first."""

from __future__ import annotations

import asyncio

from ledger.gate import NORMAL, URGENT, PriorityGate


async def test_urgent_waiters_go_first_and_slots_are_never_exceeded() -> None:
    gate = PriorityGate(1)
    order: list[str] = []
    busy = 0

    async def work(name: str, priority: int) -> None:
        nonlocal busy
        async with gate.slot(priority):
            busy += 1
            assert busy == 1
            order.append(name)
            await asyncio.sleep(0.01)
            busy -= 1

    first = asyncio.create_task(work("holder", NORMAL))
    await asyncio.sleep(0)
    waiters = [
        asyncio.create_task(work("normal-1", NORMAL)),
        asyncio.create_task(work("normal-2", NORMAL)),
        asyncio.create_task(work("urgent", URGENT)),
    ]
    await asyncio.gather(first, *waiters)
    assert order == ["holder", "urgent", "normal-1", "normal-2"]


async def test_a_cancelled_waiter_does_not_lose_the_slot() -> None:
    gate = PriorityGate(1)
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.slot():
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter.cancel()
    release.set()
    await holder
    async with asyncio.timeout(1):
        async with gate.slot():
            pass
