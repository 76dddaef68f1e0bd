"""A development SMTP sink: accepts every message and writes it into an outbox folder as an
`.eml` file, its HTML part as an `.html` file beside it, and an `index.html` listing them all
(`tools/outbox.py`).

Used by `herald dev-smtp` and `herald run --dev-smtp` so the service runs without a mail server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from herald.errors import CannotListen
from herald.tools.outbox import Outbox


class OutboxHandler:
    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self._files = Outbox(outbox)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Envelope) -> str:
        # The controller's own thread and loop run this: Herald's loop never waits on the disk.
        self._files.store(envelope.original_content or b"")
        return "250 OK stored"


def start_dev_smtp(
    outbox: Path, host: str = "127.0.0.1", port: int = 8025, option: str = "--port"
) -> Controller:
    """Start the sink on host:`port`; CannotListen names the address and the `option` that
    set the port when it cannot bind."""
    if not 0 <= port <= 65535:
        raise CannotListen.on("the dev SMTP sink", host, port, OverflowError(port), option)
    handler = OutboxHandler(outbox)  # an unusable outbox fails here, naming its path
    controller = Controller(handler, hostname=host, port=port)
    try:
        controller.start()
    except OSError as exc:
        raise CannotListen.on("the dev SMTP sink", host, port, exc, option) from exc
    return controller
