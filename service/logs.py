"""JSON lines logging: one object per record with the fields passed as `extra`.

Callers never put addresses, secret links or field values in records (the observability test
checks the raw records of a whole run). As a safety net the formatter still masks anything
shaped like an email address or a URL, so a library's message cannot leak one either.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

STANDARD_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Quotes and backslashes are excluded so that masking never breaks the JSON around a match.
_ADDRESS = re.compile(r"[^\s\"\\<>@,;:()\[\]]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"\\]+", re.IGNORECASE)


def mask(text: str) -> str:
    """Replace email addresses and URLs (secret links among them) with placeholders."""
    return _URL.sub("<url>", _ADDRESS.sub("<address>", text))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in STANDARD_RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return mask(json.dumps(entry, default=str))


def configure_logging(level: str) -> None:
    """JSON lines on stderr at `level` (HERALD_LOG_LEVEL); chatty libraries at WARNING."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiormq", "aio_pika", "mail.log", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
