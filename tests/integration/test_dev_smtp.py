"""The development SMTP sink (`herald dev-smtp`, `herald run --dev-smtp`): each message sent to
it over SMTP is kept as `.eml`, its HTML part as `.html` beside it, and `index.html` lists every
message with its time, To and Subject, escaped (headers carry event data)."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import aiosmtplib
import pytest

from herald.tools.devsmtp import start_dev_smtp

pytestmark = pytest.mark.integration
HOSTILE_SUBJECT = '<script>alert("x")</script> & <b>bold</b> Grüße'
HOSTILE_NAME = "<img src=x onerror=alert(1)>"


class _Table(HTMLParser):
    """The index's rows (cells as text) and links, and every tag it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []
        elif tag == "a":
            self.links += [value or "" for name, value in attrs if name == "href"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _index(outbox: Path) -> _Table:
    table = _Table()
    table.feed((outbox / "index.html").read_text("utf-8"))
    return table


def _email(subject: str, to: str, html: str | None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "notifications@herald.localhost"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("The text part.\n")
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


async def test_each_message_gets_its_html_file_and_an_escaped_row_in_the_index(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    # Given the dev sink on a fresh outbox
    outbox, port = tmp_path / "outbox", unused_tcp_port_factory()
    controller = start_dev_smtp(outbox, port=port)
    try:
        # When an HTML email with hostile headers and a text-only email arrive over SMTP
        page = "<!doctype html><html><body><p>Hällo, <b>reader</b></p></body></html>"
        to = f'"{HOSTILE_NAME}" <reader@example.com>'
        await aiosmtplib.send(_email(HOSTILE_SUBJECT, to, page), hostname="127.0.0.1", port=port)
        await aiosmtplib.send(
            _email("Text only", "other@example.com", None), hostname="127.0.0.1", port=port
        )
    finally:
        controller.stop()

    # Then each is kept as .eml, the HTML part as .html beside it (bytes as sent)
    emails = sorted(outbox.glob("*.eml"))
    assert len(emails) == 2
    first, second = emails
    assert first.with_suffix(".html").read_text("utf-8").strip() == page
    assert not second.with_suffix(".html").exists()
    # and the index lists both, newest first, the headers shown as text, never as markup
    table = _index(outbox)
    body = table.rows[1:]  # after the header row
    assert [row[1:3] for row in body] == [
        ["other@example.com", "Text only"],
        [f'"{HOSTILE_NAME}" <reader@example.com>', HOSTILE_SUBJECT],
    ]
    assert all(row[0].endswith(" UTC") for row in body)
    assert table.tags.isdisjoint({"script", "img", "b"})
    assert table.links == [second.name, first.with_suffix(".html").name, first.name]
    assert all((outbox / link).is_file() for link in table.links)

    # When the sink starts again on the same outbox, earlier messages stay listed
    controller = start_dev_smtp(outbox, port=port)
    try:
        await aiosmtplib.send(
            _email("Third", "third@example.com", "<p>3</p>"), hostname="127.0.0.1", port=port
        )
    finally:
        controller.stop()
    rows = _index(outbox).rows[1:]
    assert [row[2] for row in rows] == ["Third", "Text only", HOSTILE_SUBJECT]
