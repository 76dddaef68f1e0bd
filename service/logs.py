"""JSON lines logging: one object per record with the fields passed as `extra`.

Callers never put addresses, secret links or field values in records (the observability test
checks the raw records of a whole run). As a safety net the formatter still masks anything
shaped like an email address or a URL, so a library's message cannot leak one either.

`tell` is how a command speaks to its operator in one line (a warning, the reason it stops):
a JSON record once `herald run` has configured JSON logging, else plain `herald: ...` on stderr.
Other commands log through `plain_logging`: Herald's own warnings as such lines, libraries'
records (aiormq's transport errors, say) dropped, so a failure ends in the one line that names it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

STANDARD_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Quotes and backslashes are excluded so that masking never breaks the JSON around a match.
_ADDRESS = re.compile(r"[^\s\"\\<>@,;:()\[\]]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"\\]+", re.IGNORECASE)
_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


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


class _PlainLines(logging.Handler):
    """Herald's own warnings and errors as `tell` lines; other loggers' records dropped."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "herald" or record.name.startswith("herald."):
            tell(record.levelno, record.getMessage())


def plain_logging() -> None:
    """Logging for a command that is not `herald run`, unless something (a test) already
    configured logging."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(_PlainLines())


def json_logging() -> bool:
    """Whether `configure_logging` made stderr a stream of JSON lines (`herald run`)."""
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


def tell(level: int, message: str, **fields: object) -> None:
    """One line for the operator: a JSON record (with `fields`) under JSON logging, else
    `herald: [warning: ]message` on stderr, line breaks folded so it stays one line."""
    if json_logging():
        logging.getLogger("herald").log(level, message, extra=fields)
        return
    prefix = "herald: warning: " if level == logging.WARNING else "herald: "
    sys.stderr.write(prefix + _LINE_BREAKS.sub(" ", message) + "\n")
    sys.stderr.flush()
