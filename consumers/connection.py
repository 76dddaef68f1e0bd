"""Connecting to RabbitMQ: a robust connection, its first connect retried, with a heartbeat
short enough to notice a frozen broker or a network blackhole."""

from __future__ import annotations

import asyncio
import logging

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import AMQPError
from yarl import URL

log = logging.getLogger(__name__)


# aiormq gives up on a silent connection after (heartbeat + 1) x 3 seconds: with RabbitMQ's 60 s
# a frozen broker or a network blackhole would go unnoticed for 3 minutes, its messages held.
DEFAULT_HEARTBEAT_SECONDS = 15


def with_default_heartbeat(url: str) -> str:
    """The URL with `heartbeat=15` unless it names a heartbeat itself."""
    parsed = URL(url)
    if "heartbeat" in parsed.query:
        return url
    return str(parsed.update_query(heartbeat=DEFAULT_HEARTBEAT_SECONDS))


async def connect_with_retry(
    url: str, name: str, attempts: int, delay_seconds: float = 2.0
) -> AbstractRobustConnection:
    """`connect_robust` does not retry the first connect (aio-pika #202): do it here."""
    url = with_default_heartbeat(url)
    for attempt in range(1, attempts + 1):
        try:
            return await aio_pika.connect_robust(url, client_properties={"connection_name": name})
        except (AMQPError, ConnectionError, OSError) as exc:
            if attempt == attempts:
                raise
            log.warning(
                "broker not reachable, retrying",
                extra={"attempt": attempt, "error": f"{type(exc).__name__}"},
            )
            await asyncio.sleep(delay_seconds)
    raise AssertionError("unreachable")
