"""The cost the SMTP pace (senders/pace.py) adds to each send when no rate is configured and no
throttling reply has come: one `await pace.acquire()` per attempt.

    PYTHONPATH=. python bench/pace_overhead.py
"""

from __future__ import annotations

import asyncio
import time

from herald.senders.pace import Pace

ROUNDS = 200_000


async def measure() -> None:
    pace = Pace(None)

    async def nothing() -> None:
        return None

    for label, call in (("empty coroutine", nothing), ("pace.acquire() unlimited", pace.acquire)):
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(ROUNDS):
                await call()
            best = min(best, time.perf_counter() - started)
        print(f"{label:28} {best / ROUNDS * 1e9:8.0f} ns per call")


if __name__ == "__main__":
    asyncio.run(measure())
