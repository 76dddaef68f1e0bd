"""The lease keeper: while this process sends a delivery, its claim's lease is renewed, so that
only a dead worker's claims lapse and are taken over by another replica."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

from herald.workflow.ports import Ledger

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the leases of every delivery this process is sending, every third of a lease, in
    one ledger unit per 500 keys: one background task for the process, not one per event."""

    _CHUNK = 500  # keys per statement, well under any database's parameter limit

    def __init__(self, ledger: Ledger, lease: timedelta) -> None:
        self._ledger = ledger
        self._lease = lease
        self._held: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def hold(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._held[key] = self._held.get(key, 0) + 1
        if keys and self._task is None:
            self._task = asyncio.create_task(self._renew_forever(), name="herald-lease-renewal")

    def release(self, keys: Sequence[str]) -> None:
        for key in keys:
            count = self._held.pop(key, 0) - 1
            if count > 0:
                self._held[key] = count

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            keys = sorted(self._held)  # one lock order for every renewal
            for start in range(0, len(keys), self._CHUNK):
                try:
                    await self._ledger.renew(keys[start : start + self._CHUNK], self._lease)
                except Exception as exc:  # best effort: the next pass renews, a lapse only
                    # lets another worker take over (and resend with the same Message-ID)
                    log.warning(
                        "could not renew delivery leases", extra={"error": type(exc).__name__}
                    )
                    break
