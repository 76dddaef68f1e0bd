"""SMTP delivery with aiosmtplib: a small pool of reused connections, error classes mapped to
Herald's tree at this boundary, and tenacity retries for transient failures.

Outcome classes (RABBITMQ-NOTES.md): connection errors, timeouts and 4xx replies are transient;
5xx replies are permanent; 530/535 mean our credentials are wrong, which is our fault and not the
message's, so they are transient here (the message must never be failed for it). Credentials set
against a server that offers no AUTH, and required STARTTLS against a server that offers none
(a misconfiguration, or a stripped EHLO), are the same kind of configuration fault.

The pace (senders/pace.py): every attempt takes a token from one bucket shared by the pool
before it takes a connection (`HERALD_SMTP_MAX_RATE`); a "slow down" 4xx reply halves the rate
and is raised as `SmtpThrottled`, a TransientSendError, so the delivery goes the usual retry way.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from dataclasses import dataclass

import aiosmtplib
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from herald.errors import PermanentSendError, SmtpAuthenticationError, TransientSendError
from herald.renderers.email import OutgoingEmail
from herald.senders.base import SendResult
from herald.senders.bounces import enhanced_code
from herald.senders.pace import Pace, PaceObserver, is_throttling
from herald.senders.return_path import ReturnPath
from herald.senders.smtp_data import install as install_fast_data_passes

log = logging.getLogger(__name__)
install_fast_data_passes()

AUTHENTICATION_CODES = frozenset({530, 535})
# aiosmtplib's words when credentials are set and the server's EHLO lists no AUTH: a bare
# SMTPException, no reply code.
_AUTH_NOT_OFFERED = "AUTH extension is not supported"
_STARTTLS_NOT_OFFERED = "STARTTLS extension not supported"


class SmtpAuthNotOffered(SmtpAuthenticationError):
    """Credentials are configured but the server offers no AUTH (wrong port, a relay that
    expects TLS first, or credentials meant for another server): a configuration fault, handled
    as a refused login (consuming pauses until a login succeeds)."""


class SmtpStartTlsNotOffered(SmtpAuthenticationError):
    """TLS is required (`HERALD_SMTP_STARTTLS=true`) but the server offers no STARTTLS: nothing
    may go out in plaintext, and no message is at fault; handled as a refused login (consuming
    pauses until the server offers STARTTLS again)."""


class AmbiguousSendError(TransientSendError):
    """The connection dropped after DATA began: the server may have accepted the message.
    Not retried at once; the broker-side retry resends it later with the same Message-ID
    (RFC 5321 4.5.3.2: a duplicate beats a loss)."""

    retry_reason = "smtp_dropped_in_data"


def _retryable(error: BaseException) -> bool:
    """A transient failure retried in process: not our credentials, and not a drop during DATA
    (tenacity sees BaseException: cancellation on shutdown is never retried)."""
    return isinstance(error, TransientSendError) and not isinstance(
        error, (SmtpAuthenticationError, AmbiguousSendError)
    )


_RETRY = retry_if_exception(_retryable)


class SmtpThrottled(TransientSendError):
    """The relay asked us to slow down (421, 451 4.7.x, 454 4.7.0, SES `Throttling`): the pace
    halved; the delivery is retried like any 4xx reply."""


@dataclass(frozen=True, slots=True)
class SmtpOptions:
    host: str = "127.0.0.1"
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_seconds: float = 30.0
    pool_size: int = 4
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 30.0
    retry_attempts: int = 6
    retry_budget_seconds: float = 120.0
    # The whole send, retries included; far below RabbitMQ's 30-minute consumer timeout.
    send_budget_seconds: float = 120.0
    # Sends per second for the whole pool (HERALD_SMTP_MAX_RATE); None: unlimited.
    max_rate: float | None = None


class SmtpSender:
    """Sends through a pool of `pool_size` connections, opened lazily and reused."""

    def __init__(
        self,
        options: SmtpOptions,
        pace_observer: PaceObserver | None = None,
        return_path: ReturnPath | None = None,
    ) -> None:
        self._options = options
        self._return_path = return_path
        self.pace = Pace(options.max_rate, observer=pace_observer)
        self._idle: asyncio.LifoQueue[aiosmtplib.SMTP] = asyncio.LifoQueue()
        for _ in range(options.pool_size):
            self._idle.put_nowait(self._new_client())

    @property
    def in_use(self) -> int:
        """Connections taken from the pool right now."""
        return self._options.pool_size - self._idle.qsize()

    def _new_client(self) -> aiosmtplib.SMTP:
        options = self._options
        return aiosmtplib.SMTP(
            hostname=options.host,
            port=options.port,
            username=options.username,
            password=options.password,
            # True means required: aiosmtplib's None would silently fall back to plaintext.
            start_tls=bool(options.starttls),
            tls_context=ssl.create_default_context() if options.starttls else None,
            timeout=options.timeout_seconds,
        )

    async def send(self, email: OutgoingEmail) -> SendResult:
        """Send once per attempt; retry transient failures with jittered exponential backoff.

        The first attempt runs without tenacity (about 25 us of its machinery per send, and
        nearly every send succeeds at once); after a retryable failure tenacity runs the rest
        with the same schedule: the wait before attempt n+1 drawn from [0, base x 2^(n-1)],
        the same attempt limit, and the delay budget counted from the first attempt."""
        options = self._options
        try:
            async with asyncio.timeout(options.send_budget_seconds):
                started = time.monotonic()
                try:
                    return await self._send_once(email)
                except TransientSendError as exc:
                    if not _retryable(exc) or options.retry_attempts <= 1:
                        raise
                first_wait = min(options.retry_base_seconds, options.retry_max_seconds)
                await asyncio.sleep(random.uniform(0, first_wait))  # noqa: S311 (jitter)
                retrying = AsyncRetrying(
                    retry=_RETRY,
                    # Its attempt 1 is our attempt 2: the doubled base keeps the schedule.
                    wait=wait_random_exponential(
                        multiplier=options.retry_base_seconds * 2, max=options.retry_max_seconds
                    ),
                    stop=stop_after_attempt(options.retry_attempts - 1)
                    | stop_after_delay(
                        max(0.0, options.retry_budget_seconds - (time.monotonic() - started))
                    ),
                    reraise=True,
                )
                async for attempt in retrying:
                    with attempt:
                        return await self._send_once(email)
        except TimeoutError as exc:
            raise TransientSendError("SMTP send budget exhausted") from exc
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _send_once(self, email: OutgoingEmail) -> SendResult:
        # The token first: a send waiting for one holds no connection.
        await self.pace.acquire()
        client = await self._idle.get()
        reusable = False
        stage = "connect"  # where a refusal came, for the bounce classification
        try:
            if not client.is_connected:
                await client.connect()
            stage = "mail"
            await client.mail(self.envelope_sender(email))
            stage = "rcpt"
            await client.rcpt(email.envelope_to)
            stage = "data"
            # Up to here nothing was delivered: any failure is safe to retry at once.
            try:
                reply = await client.data(email.content)
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
                raise AmbiguousSendError(
                    f"connection lost during DATA ({type(exc).__name__}): the message may have "
                    "been delivered"
                ) from exc
            reusable = True
            return SendResult(code=reply.code, response=reply.message)
        except AmbiguousSendError:
            raise
        except aiosmtplib.SMTPRecipientRefused as exc:
            raise self._refused(exc, "recipient refused", "rcpt") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise self._refused(exc, "server refused the message", stage) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise self._connection_error(exc) from exc
        finally:
            # A connection whose conversation did not end cleanly (refusal, drop, cancellation)
            # is never reused: the next send opens a fresh one.
            if not reusable:
                self._discard(client)
                client = self._new_client()
            self._idle.put_nowait(client)

    def envelope_sender(self, email: OutgoingEmail) -> str:
        """MAIL FROM: the delivery's VERP address when a bounce domain is set."""
        if self._return_path is None:
            return email.envelope_from
        return self._return_path.address(email.key)

    def _refused(
        self, exc: aiosmtplib.SMTPResponseException, what: str, stage: str
    ) -> TransientSendError | PermanentSendError:
        if 400 <= exc.code < 500 and is_throttling(exc.code, exc.message):
            self.pace.throttled(exc.code)
            log.warning(
                "SMTP relay is throttling (%d): sending slowed to %.2f/s",
                exc.code,
                self.pace.current_rate,
            )
            return SmtpThrottled(f"{what} temporarily, throttled ({exc.code})", exc.code)
        return _classify(exc.code, what, exc.message, stage)

    @staticmethod
    def _discard(client: aiosmtplib.SMTP) -> None:
        if client.is_connected:
            client.close()

    async def check(self) -> None:
        """Connect and log in once, to learn whether the server takes our credentials again."""
        client = self._new_client()
        try:
            await client.connect()
            await client.quit()
        except aiosmtplib.SMTPResponseException as exc:
            raise _classify(exc.code, "login refused") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise self._connection_error(exc) from exc
        finally:
            self._discard(client)

    def _connection_error(self, exc: BaseException) -> TransientSendError:
        options = self._options
        if (
            options.username is not None
            and isinstance(exc, aiosmtplib.SMTPException)
            and _AUTH_NOT_OFFERED in str(exc)
        ):
            log.error(
                "SMTP credentials are set but %s:%d offers no AUTH (wrong port or host, or the "
                "server wants TLS first: check HERALD_SMTP_HOST, HERALD_SMTP_PORT, "
                "HERALD_SMTP_STARTTLS)",
                options.host,
                options.port,
            )
            return SmtpAuthNotOffered(
                f"SMTP server {options.host}:{options.port} offers no AUTH but credentials are set"
            )
        if (
            options.starttls
            and isinstance(exc, aiosmtplib.SMTPException)
            and _STARTTLS_NOT_OFFERED in str(exc)
        ):
            log.error(
                "STARTTLS is required but %s:%d does not offer it: nothing is sent in plaintext "
                "(check HERALD_SMTP_HOST, HERALD_SMTP_PORT and HERALD_SMTP_STARTTLS, or whether "
                "something between Herald and the server strips STARTTLS)",
                options.host,
                options.port,
            )
            return SmtpStartTlsNotOffered(
                f"SMTP server {options.host}:{options.port} offers no STARTTLS but TLS is required"
            )
        # host:port in the message: the log line of an SMTP outage says which server is down
        return TransientSendError(
            f"SMTP connection to {options.host}:{options.port} failed: {type(exc).__name__}"
        )

    async def close(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()


def _classify(
    code: int, what: str, reply: str | None = None, stage: str | None = None
) -> TransientSendError | PermanentSendError:
    if code in AUTHENTICATION_CODES:
        return SmtpAuthenticationError(f"SMTP authentication failed ({code})", code)
    if 400 <= code < 500:
        return TransientSendError(f"{what} temporarily ({code})", code)
    return PermanentSendError(
        f"{what} permanently ({code})",
        code,
        enhanced=enhanced_code(reply),
        stage=stage,
        reply=None if reply is None else reply[:500],
    )
