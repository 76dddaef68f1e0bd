"""A development SMTP sink: accepts every message and writes it as an `.eml` file.

Used by `herald dev-smtp` and `herald run --dev-smtp` so the service runs without a mail server.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope


class OutboxHandler:
    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        outbox.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Envelope) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
        path = self.outbox / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        content = envelope.original_content or b""
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(content)
        temporary.rename(path)  # readers never see a half-written file
        return "250 OK stored"


def start_dev_smtp(outbox: Path, host: str = "127.0.0.1", port: int = 8025) -> Controller:
    controller = Controller(OutboxHandler(outbox), hostname=host, port=port)
    controller.start()
    return controller
