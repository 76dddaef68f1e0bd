"""Herald asks for a 15 s heartbeat unless the operator's AMQP URL names one."""

from __future__ import annotations

import pytest

from herald.consumers.connection import DEFAULT_HEARTBEAT_SECONDS, with_default_heartbeat


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:guest@127.0.0.1:5672/?heartbeat=15"),
        ("amqp://g:g@h:5672/%2F", "amqp://g:g@h:5672/%2F?heartbeat=15"),
        ("amqp://u%3Ar:p%40s@h/vh", "amqp://u%3Ar:p%40s@h/vh?heartbeat=15"),
        ("amqp://g:g@h/vh?heartbeat=2", "amqp://g:g@h/vh?heartbeat=2"),
        ("amqp://g:g@h/vh?heartbeat=0&name=x", "amqp://g:g@h/vh?heartbeat=0&name=x"),
    ],
)
def test_default_heartbeat(url: str, expected: str) -> None:
    assert DEFAULT_HEARTBEAT_SECONDS == 15
    assert with_default_heartbeat(url) == expected
