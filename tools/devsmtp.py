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

from herald.tools.outbox import Outbox


class OutboxHandler:
    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self._files = Outbox(outbox)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Envelope) -> str:
        # The controller's own thread and loop run this: Herald's loop never waits on the disk.
        self._files.store(envelope.original_content or b"")
        return "250 OK stored"


def start_dev_smtp(outbox: Path, host: str = "127.0.0.1", port: int = 8025) -> Controller:
    controller = Controller(OutboxHandler(outbox), hostname=host, port=port)
    controller.start()
    return controller
