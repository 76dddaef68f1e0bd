"""An in-memory `Sender` for unit tests: records emails, can be told to fail."""

from __future__ import annotations

from collections import deque

from herald.errors import HeraldError
from herald.renderers.email import OutgoingEmail
from herald.senders.base import SendResult


class MemorySender:
    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []
        self.failures: deque[HeraldError] = deque()

    def fail_next(self, *errors: HeraldError) -> None:
        self.failures.extend(errors)

    async def send(self, email: OutgoingEmail) -> SendResult:
        if self.failures:
            raise self.failures.popleft()
        self.sent.append(email)
        return SendResult(code=250, response="OK queued")

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        return None
