"""The poison guard: a message that ends the process every time (a crash in a library, the OOM
killer) must end in the dead-letter queue without taking its neighbours with it.

RabbitMQ charges a delivery to every unacked message of a connection that dies, so with a
prefetch of 64 a crash on one message charges 63 innocent ones too, and the queue's delivery
limit would dead-letter them all together. So a redelivered message (`x-delivery-count` > 0) is
a suspect, taken alone: the domain stops taking new deliveries, the ordinary ones in hand
settle, and the suspects are processed one at a time, each between `AttemptLog.begin` and
`end`. A crash leaves the suspect's attempt open; once a message has ended the process
`MAX_ATTEMPTS_ALONE` times while processed alone, its next delivery is dead-lettered
(`delivery_limit`) without processing it. Ordinary traffic is untouched: no ledger write, no
waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aio_pika.abc import AbstractIncomingMessage

MAX_ATTEMPTS_ALONE = 2


class AttemptLog(Protocol):
    """Durable counts of attempts that never ended (the ledger's `DeliveryAttempts`)."""

    async def begin(self, identity: str) -> int:
        """Count one more attempt at `identity`; returns the count (1 the first time)."""
        ...

    async def end(self, identity: str) -> None:
        """The attempt ended without ending the process."""
        ...


def delivery_count(message: AbstractIncomingMessage) -> int:
    """How often the broker has delivered this message before (quorum queues count)."""
    count = (message.headers or {}).get("x-delivery-count", 0)
    return count if isinstance(count, int) else 0


def identity(queue: str, message: AbstractIncomingMessage) -> str:
    """Names a message across its redeliveries: its id, else a digest of its body."""
    if message.message_id:
        return f"{queue} {message.message_id}"
    return f"{queue} sha256:{hashlib.sha256(message.body).hexdigest()}"


@dataclass
class Isolation:
    """One domain's bookkeeping: ordinary deliveries in progress, and suspects waiting to be
    processed alone."""

    active: int = 0
    suspects: int = 0
    isolating: bool = False
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.idle.set()

    @contextlib.asynccontextmanager
    async def ordinary(self) -> AsyncIterator[None]:
        self.active += 1
        self.idle.clear()
        try:
            yield
        finally:
            self.active -= 1
            if self.active == 0:
                self.idle.set()

    @contextlib.asynccontextmanager
    async def alone(
        self,
        stop_intake: Callable[[], Awaitable[None]],
        resume_intake: Callable[[], Awaitable[None]],
    ) -> AsyncIterator[None]:
        """Wait for this suspect's turn: no new deliveries, no ordinary one in progress, no
        other suspect in progress. The last suspect out takes deliveries again."""
        self.suspects += 1
        try:
            async with self.turn:
                if not self.isolating:
                    self.isolating = True
                    await stop_intake()
                await self.idle.wait()
                yield
        finally:
            self.suspects -= 1
            if self.suspects == 0 and self.isolating:
                self.isolating = False
                await resume_intake()
