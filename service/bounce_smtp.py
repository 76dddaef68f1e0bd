"""The inbound SMTP listener for reports after the 250 (issue 18): the MX of the bounce domain.

An aiosmtpd `SMTP` protocol served on Herald's own event loop. It takes mail only for the
bounce domain (not an open relay), refuses a VERP address whose token does not verify at RCPT,
reads each message with `feedback/reports.py` and records what it proves in the ledger. The
250 is sent only after the ledger committed: a crash or a ledger outage before that leaves the
report with the sending MTA, which retries (451) or already has it queued (no reply at all).
Anything that is not a valid report for a valid token is answered 5xx, never accepted and
dropped. Each outcome is counted (`herald_feedback_reports_total`) and logged without
addresses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, Envelope, Session

from herald.errors import CannotListen, TransientError
from herald.faultpoints import crash_point
from herald.feedback.ports import FeedbackLedger, FeedbackObserver
from herald.feedback.reports import ReportRefused, read_report
from herald.senders.return_path import LOCAL_PREFIX, ReturnPath
from herald.service.settings import Settings

log = logging.getLogger(__name__)

# A DSN goes to one return path, an ARF report to one feedback address: a few are plenty.
MAX_RECIPIENTS = 10
# SMTP commands per connection (an MTA may pass many reports in one session); then 421.
MAX_COMMANDS = 200
IDLE_TIMEOUT_SECONDS = 300.0  # RFC 5321 4.5.3.2.7: at least 5 minutes
_TOO_MANY_SESSIONS = b"421 4.7.0 Too many connections, try again later\r\n"

_REFUSALS = {
    "no_token": "550 5.1.1 This report names no delivery of ours",
    "unknown_delivery": "550 5.1.1 This report names no delivery of ours",
}
_NOT_A_REPORT = "550 5.6.0 Not a delivery status or complaint report (RFC 3464, RFC 5965)"
_ACCEPTED = "250 2.0.0 Report recorded"
_NOTHING_TO_DO = "250 2.0.0 Report received, nothing to change"
_TRY_LATER = "451 4.3.0 Cannot record the report now, try again later"


@dataclass(frozen=True, slots=True)
class ListenerOptions:
    host: str
    port: int  # 0: any free port
    max_message_bytes: int
    # Open SMTP sessions at once; one more is answered 421 and closed (the MTA retries later).
    max_sessions: int = 100


class BounceHandler:
    """The aiosmtpd handler: RCPT and DATA policy, the ledger write, the accounting."""

    def __init__(
        self, return_path: ReturnPath, ledger: FeedbackLedger, observer: FeedbackObserver
    ) -> None:
        self._return_path = return_path
        self._ledger = ledger
        self._observer = observer

    def count(self, source: str, outcome: str, reason: str = "") -> None:
        self._observer.feedback(source, outcome, reason)
        log.info("feedback report", extra={"source": source, "outcome": outcome, "reason": reason})

    async def handle_RCPT(
        self,
        _server: SMTP,
        _session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not self._return_path.is_ours(address):
            self.count("smtp", "rejected", "relay_denied")
            return "550 5.7.1 Relaying denied"
        local = address.rpartition("@")[0].lower()
        if local.startswith(LOCAL_PREFIX) and self._return_path.delivery_prefix(address) is None:
            self.count("smtp", "rejected", "bad_token")
            return "550 5.1.1 No such bounce address"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        try:
            return await self._take(envelope.original_content or b"", list(envelope.rcpt_tos))
        except Exception:  # a bug must not turn into a 5xx that makes the MTA drop the report
            log.exception("feedback report could not be handled")
            return _TRY_LATER

    async def _take(self, raw: bytes, recipients: list[str]) -> str:
        try:
            # Parsing up to the size limit takes milliseconds: off the loop all the same.
            read = await asyncio.to_thread(read_report, raw, recipients, self._return_path)
        except ReportRefused as refused:
            self.count(refused.source, "rejected", refused.reason)
            return _REFUSALS.get(refused.reason, _NOT_A_REPORT)
        if not read.reports:
            self.count(read.source, "ignored", read.ignored)
            return _NOTHING_TO_DO
        crash_point("feedback_before_record", read.reports[0].delivery_prefix)
        named = False
        for report in read.reports:
            try:
                outcome = await self._ledger.record_feedback(report)
            except TransientError:
                self.count(read.source, "rejected", "ledger_unavailable")
                return _TRY_LATER
            if outcome is None:
                self.count(read.source, "rejected", "unknown_delivery")
                continue
            named = True
            changed = outcome.suppression_added or outcome.delivery_updated
            self.count(read.source, "recorded" if changed else "repeat")
        return _ACCEPTED if named else _REFUSALS["unknown_delivery"]


class _ReportSmtp(SMTP):
    """aiosmtpd's SMTP, counting the refusals it makes itself (size and line length, before
    the handler sees the message), and known to the listener so that stop() can end it."""

    def __init__(
        self,
        sessions: set[_ReportSmtp],
        max_sessions: int,
        refused: Callable[[str], None],
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._sessions = sessions
        self._max_sessions = max_sessions
        self._refused = refused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if len(self._sessions) >= self._max_sessions:
            self._refused("too_many_sessions")
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(_TOO_MANY_SESSIONS)
            transport.close()
            return
        self._sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self not in self._sessions:  # refused in connection_made: aiosmtpd never started
            return
        self._sessions.discard(self)
        super().connection_lost(error)

    async def push(self, status: AnyStr) -> None:
        text = status if isinstance(status, str) else status.decode("ascii", "replace")
        if text.startswith("552"):
            self._refused("too_large")
        elif text.startswith("500 Line too long"):
            self._refused("line_too_long")
        await super().push(status)


class BounceListener:
    """Serves `BounceHandler` on the running loop until `stop()`."""

    def __init__(self, handler: BounceHandler, options: ListenerOptions, hostname: str) -> None:
        self._handler = handler
        self._options = options
        self._hostname = hostname
        self._server: asyncio.Server | None = None
        self._sessions: set[_ReportSmtp] = set()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        options = self._options
        try:
            self._server = await loop.create_server(
                self._protocol, host=options.host, port=options.port
            )
        except (OSError, OverflowError) as exc:
            raise CannotListen.on(
                "the bounce listener", options.host, options.port, exc, "HERALD_BOUNCE_SMTP_PORT"
            ) from exc
        log.info("bounce listener started", extra={"bounce_smtp_port": self.port})
        return self.port

    def _protocol(self) -> _ReportSmtp:
        return _ReportSmtp(
            self._sessions,
            self._options.max_sessions,
            lambda reason: self._handler.count("smtp", "rejected", reason),
            handler=self._handler,
            data_size_limit=self._options.max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=self._hostname,
            ident="Herald bounce listener",
            timeout=IDLE_TIMEOUT_SECONDS,
            command_call_limit=MAX_COMMANDS,
            loop=asyncio.get_running_loop(),
        )

    async def stop(self) -> None:
        """Stop accepting and close open sessions. A report in flight gets no reply: its MTA
        keeps it and tries again (recording is idempotent)."""
        if self._server is None:
            return
        self._server.close()
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        await self._server.wait_closed()
        await asyncio.sleep(0)  # let the closed sessions run their connection_lost
        self._server = None


async def start_bounce_listener(
    return_path: ReturnPath,
    ledger: FeedbackLedger,
    observer: FeedbackObserver,
    options: ListenerOptions,
) -> BounceListener:
    """Build and start a listener for `return_path`'s domain; returns it once bound."""
    handler = BounceHandler(return_path, ledger, observer)
    listener = BounceListener(handler, options, hostname=return_path.domain)
    await listener.start()
    return listener


async def bounce_listener_for(
    settings: Settings, ledger: FeedbackLedger, observer: FeedbackObserver
) -> BounceListener | None:
    """The listener `herald run` starts when HERALD_BOUNCE_SMTP_PORT is set, else None."""
    return_path = settings.return_path
    if settings.bounce_smtp_port is None or return_path is None:
        return None
    options = ListenerOptions(
        settings.bounce_smtp_host, settings.bounce_smtp_port, settings.bounce_max_message_bytes
    )
    return await start_bounce_listener(return_path, ledger, observer, options)
