"""The development outbox: each accepted message as `<name>.eml`, its HTML part as
`<name>.html` beside it, and `index.html` listing every message (newest first) with its time,
To and Subject, so a newcomer can open what Herald sent in a browser.

Headers are untrusted (they carry event data): everything the index shows is HTML-escaped.
Every file is written to a temporary name and renamed, so readers never see half a file.
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from pathlib import Path
from urllib.parse import quote

INDEX = "index.html"
_STAMP = "%Y%m%dT%H%M%S.%f"


@dataclass(frozen=True, slots=True)
class Entry:
    """One message of the outbox, as the index lists it."""

    name: str  # the file name without its suffix
    received: datetime
    to: str
    subject: str
    has_html: bool


class Outbox:
    """Writes messages into `folder` and keeps its `index.html` current."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        # Messages of earlier runs stay listed; their headers are read once, here.
        self._entries = [_read_entry(path) for path in sorted(folder.glob("*.eml"))]
        self._write_index()

    @property
    def entries(self) -> list[Entry]:
        return list(self._entries)

    def store(self, content: bytes) -> Path:
        """Write one message (`.eml`, its HTML part, the index); the `.eml` file's path."""
        received = datetime.now(UTC)
        name = f"{received.strftime(_STAMP)}-{uuid.uuid4().hex[:8]}"
        path = self.folder / f"{name}.eml"
        _write(path, content)
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        page = _html_part(message)
        if page is not None:
            _write(self.folder / f"{name}.html", page)
        self._entries.append(
            Entry(
                name,
                received,
                _header(message, "To"),
                _header(message, "Subject"),
                page is not None,
            )
        )
        self._write_index()
        return path

    def _write_index(self) -> None:
        rows = "\n".join(_row(entry) for entry in reversed(self._entries))
        count = len(self._entries)
        page = _PAGE.format(
            count=f"{count} message{'' if count == 1 else 's'}",
            rows=rows or '<tr><td colspan="4">Nothing received yet.</td></tr>',
        )
        _write(self.folder / INDEX, page.encode("utf-8"))


def _html_part(message: EmailMessage) -> bytes | None:
    """The HTML body as sent (its own charset, which its `<meta>` names), or None."""
    part = message.get_body(preferencelist=("html",))
    if part is None:
        return None
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else None


def _read_entry(path: Path) -> Entry:
    with path.open("rb") as file:
        headers = BytesHeaderParser(policy=policy.default).parse(file)
    try:
        received = datetime.strptime(path.stem.split("-", 1)[0], _STAMP).replace(tzinfo=UTC)
    except ValueError:  # a file someone put there by hand
        received = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return Entry(
        path.stem,
        received,
        _header(headers, "To"),
        _header(headers, "Subject"),
        path.with_suffix(".html").exists(),
    )


def _header(message: Message, name: str) -> str:
    try:
        value = message[name]
    except Exception:  # a malformed header: the index says so instead of failing the message
        return "(unreadable)"
    return "" if value is None else str(value)


def _row(entry: Entry) -> str:
    link = quote(entry.name)
    view = f'<a href="{link}.html">HTML</a> · ' if entry.has_html else ""
    return (
        f"<tr><td>{entry.received.strftime('%Y-%m-%d %H:%M:%S')} UTC</td>"
        f"<td>{html.escape(entry.to)}</td><td>{html.escape(entry.subject)}</td>"
        f'<td>{view}<a href="{link}.eml">.eml</a></td></tr>'
    )


def _write(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(content)
    temporary.rename(path)


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Herald outbox</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1f2933; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #d9e2ec; }}
th {{ background: #f0f4f8; }}
</style>
</head>
<body>
<h1>Herald outbox</h1>
<p>{count}, newest first, as the development SMTP sink received them.</p>
<table>
<thead><tr><th>received</th><th>To</th><th>Subject</th><th>open</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""
