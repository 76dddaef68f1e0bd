"""senders/smtp_data.py gives exactly the bytes of aiosmtplib's own line-ending and
dot-stuffing passes, on random input full of CR, LF and periods, and on real emails."""

from __future__ import annotations

import random
import re

from aiosmtplib import protocol

from herald.schemas.examples import load_example
from herald.senders import smtp  # noqa: F401  (installs the passes)
from herald.senders.smtp_data import (
    _DotStuffing,
    _original_normalize,
    normalize_message_line_endings,
)
from tests import support

ORIGINAL_PERIOD = re.compile(rb"(?m)^\.")


def _aiosmtplib(message: bytes) -> bytes:
    return ORIGINAL_PERIOD.sub(b"..", _original_normalize(message))


def _herald(message: bytes) -> bytes:
    return _DotStuffing().sub(b"..", normalize_message_line_endings(message))


def test_the_passes_are_installed_into_aiosmtplib() -> None:
    assert protocol.normalize_message_line_endings is normalize_message_line_endings
    assert isinstance(protocol.PERIOD_REGEX, _DotStuffing)


def test_random_messages_give_aiosmtplibs_bytes() -> None:
    chooser = random.Random(20261207)
    alphabet = [b"\r", b"\n", b"\r\n", b".", b"a", b" ", b"..", b"\n.", b"\r."]
    for _ in range(50_000):
        message = b"".join(chooser.choice(alphabet) for _ in range(chooser.randint(0, 24)))
        assert _herald(message) == _aiosmtplib(message), message


def test_rendered_emails_give_aiosmtplibs_bytes() -> None:
    document = load_example("orders.order.placed+new_and_changed_lines")
    for email in support.render_all(document):
        content = email.content + b".leading period line\r\n..two\r\n"
        assert _herald(content) == _aiosmtplib(content)
        assert _herald(b"." + content) == _aiosmtplib(b"." + content)
