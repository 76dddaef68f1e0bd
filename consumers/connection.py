"""Connecting to RabbitMQ: a robust connection, its first connect retried, with a heartbeat
short enough to notice a frozen broker or a network blackhole. A connect that fails for good
raises BrokerUnreachable naming host:port, vhost and user (never the password)."""

from __future__ import annotations

import asyncio
import errno
import logging
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import AMQPError, InvalidFrameError, ProbableAuthenticationError
from yarl import URL

from herald.errors import BrokerUnreachable

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
    """`connect_robust` does not retry the first connect (aio-pika #202): do it here. A vhost
    that does not exist or a refused login is not retried. Raises BrokerUnreachable."""
    with_heartbeat = with_default_heartbeat(url)
    for attempt in range(1, attempts + 1):
        try:
            return await aio_pika.connect_robust(
                with_heartbeat, client_properties={"connection_name": name}
            )
        except (AMQPError, ConnectionError, OSError) as exc:
            error = broker_unreachable(url, exc)
            if attempt == attempts or _refused_for_good(exc):
                raise error from exc
            # INFO: `herald run` shows it (JSON, level INFO by default); a one-shot command
            # ends with one line saying why it gave up instead
            log.info(
                "broker not reachable, retrying",
                extra={"attempt": attempt, "error": error.what, "broker": error.where},
            )
            await asyncio.sleep(delay_seconds)
    raise AssertionError("unreachable")


def broker_unreachable(url: str, error: BaseException) -> BrokerUnreachable:
    """A failed connect to `url` as Herald's error: why, and host:port, vhost and user."""
    return BrokerUnreachable(f"cannot connect to the broker: {_reason(error)}", broker_where(url))


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """The broker an AMQP URL names, as aiormq reads it, without the password."""

    user: str
    host: str
    port: int
    vhost: str
    tls: bool

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def where(self) -> str:
        """`127.0.0.1:5672, vhost /, user guest` (not as a URL, which the log formatter would
        mask)."""
        return f"{self.address}, vhost {self.vhost}, user {self.user}"


def broker_address(url: str) -> BrokerAddress:
    parsed = URL(url)
    tls = parsed.scheme == "amqps"
    path = parsed.path
    # aiormq: the path without its leading slash, %2F read as a slash; "/" when empty
    vhost = "/" if path in ("", "/") else path[1:].replace("%2F", "/")
    return BrokerAddress(
        user=parsed.user or "guest",
        host=parsed.host or "localhost",
        port=parsed.port or (5671 if tls else 5672),
        vhost=vhost,
        tls=tls,
    )


def broker_where(url: str) -> str:
    return broker_address(url).where()


def _vhost_refused(error: BaseException) -> bool:
    """RabbitMQ answered Connection.Open with Connection.Close: the vhost does not exist, or
    the user may not use it (aiormq keeps only the frame's type, not its reply text)."""
    text = str(error)
    return (
        isinstance(error, InvalidFrameError)
        and "Connection.OpenOk" in text
        and "Connection.Close" in text
    )


def _refused_for_good(error: BaseException) -> bool:
    return isinstance(error, ProbableAuthenticationError) or _vhost_refused(error)


def _reason(error: BaseException) -> str:
    if _vhost_refused(error):
        return "the vhost does not exist or the user has no access to it"
    if isinstance(error, ProbableAuthenticationError):
        return "login refused"
    if isinstance(error, TimeoutError):
        return "no answer"
    if isinstance(error, OSError) and error.errno == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return type(error).__name__
