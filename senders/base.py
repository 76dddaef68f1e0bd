"""The `Sender` protocol and its result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from herald.renderers.email import OutgoingEmail


@dataclass(frozen=True, slots=True)
class SendResult:
    """The server accepted the message; `response` is its reply text (queue id and so on)."""

    code: int
    response: str


class Sender(Protocol):
    async def send(self, email: OutgoingEmail) -> SendResult:
        """Send one email or raise `TransientSendError` / `PermanentSendError`."""
        ...

    async def check(self) -> None:
        """Raise unless the server currently accepts a connection and our credentials."""
        ...

    async def close(self) -> None: ...
