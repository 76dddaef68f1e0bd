"""The soak's mail server (bench/soak.py): one harness Mailbox per Herald replica, so every
accepted copy is known to come from one replica, all writing to one shared `MailLog` with the
time each copy was taken. It adds what the soak needs on top of tests/faults/harness.py: SMTP
AUTH whose answer can turn to 535 (row 19), permanent refusals of chosen recipients at RCPT or
at DATA (row 18, remembered, so a redelivery is refused again), and closing the idle sessions so
that the next sends open new connections (and meet the new credentials or a slow greeting).
"""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope

from tests.faults.harness import Mailbox, _Controller, _Handler

RCPT_REFUSALS = ("550 5.1.1 mailbox unavailable", "553 5.1.3 bad destination mailbox address")
# aiosmtpd warns on every successful login (its own Session.login_data); not the soak's concern.
warnings.filterwarnings("ignore", message="Session.login_data is deprecated")

DATA_REFUSALS = ("552 5.3.4 message size exceeds fixed limit", "554 5.7.1 rejected by policy")
TRANSIENT_REPLIES = (
    "421 4.3.0 service not available, try later",
    "450 4.2.1 mailbox busy",
    "451 4.3.0 local error in processing",
    "452 4.3.1 insufficient system storage",
)


@dataclass(frozen=True, slots=True)
class Copy:
    """One message the server took (its content complete, the `.` received)."""

    recipient: str
    message_id: str
    accepted_at: float  # time.time()
    replica: int  # whose mailbox took it
    dropped: bool  # the server hung up before its 250 (row 21): Herald never saw it accepted


@dataclass
class MailLog:
    """Shared by the replicas' mailboxes; written from their server threads."""

    copies: list[Copy] = field(default_factory=list)
    accepted: set[str] = field(default_factory=set)  # recipients with at least one copy
    refused: dict[str, str] = field(default_factory=dict)  # recipient -> permanent reply
    refuse_at_rcpt: int = 0  # how many next new recipients to refuse at RCPT
    refuse_at_data: int = 0  # ... and at DATA
    auth_ok: bool = True
    logins_refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def rcpt_refusal(self, address: str) -> str | None:
        with self.lock:
            if address in self.refused:
                return self.refused[address]
            if self.refuse_at_rcpt > 0 and address not in self.accepted:
                self.refuse_at_rcpt -= 1
                reply = RCPT_REFUSALS[len(self.refused) % len(RCPT_REFUSALS)]
                self.refused[address] = reply
                return reply
            return None

    def data_refusal(self, addresses: list[str]) -> str | None:
        with self.lock:
            for address in addresses:
                if address in self.refused:
                    return self.refused[address]
            fresh = [address for address in addresses if address not in self.accepted]
            if self.refuse_at_data > 0 and fresh and len(fresh) == len(addresses):
                self.refuse_at_data -= 1
                reply = DATA_REFUSALS[len(self.refused) % len(DATA_REFUSALS)]
                for address in addresses:
                    self.refused[address] = reply
                return reply
            return None

    def record(self, envelope: Envelope, replica: int, dropped: bool) -> None:
        content = (envelope.original_content or b"").decode("utf-8", "replace")
        headers = content.split("\r\n\r\n", 1)[0]
        fields = dict(
            line.split(": ", 1) for line in headers.split("\r\n") if ": " in line and line[0] != " "
        )
        now = time.time()
        with self.lock:
            for recipient in envelope.rcpt_tos:
                self.copies.append(
                    Copy(recipient, fields.get("Message-ID", ""), now, replica, dropped)
                )
                self.accepted.add(recipient)


@dataclass
class SoakMailbox(Mailbox):
    """A harness Mailbox that offers AUTH (accepted while `log.auth_ok`) and records into the
    shared log with timestamps."""

    log: MailLog = field(default_factory=MailLog)
    replica: int = 0

    def __post_init__(self) -> None:
        self.refuse = self.log.rcpt_refusal

    def start(self) -> None:
        log = self.log

        def authenticator(*_args: Any) -> AuthResult:
            if not log.auth_ok:
                log.logins_refused += 1
            return AuthResult(success=log.auth_ok, handled=False)

        self.controller = _Controller(
            self,
            _SoakHandler(self),
            hostname="127.0.0.1",
            port=self.port,
            timeout=self.idle_timeout,
            authenticator=authenticator,
            auth_require_tls=False,
        )
        self.controller.start()
        self.connections = 0

    async def close_idle_sessions(self) -> int:
        """Close (gracefully: a pending reply is flushed first) every session that is not in
        a mail transaction; Herald's pooled connections then reconnect on their next send.
        A session between MAIL and the end of DATA is left alone, so nothing is cut after the
        message was taken."""
        controller = self.controller
        if controller is None:
            return 0
        sessions = self.sessions

        async def close() -> int:
            closed = 0
            for session in list(sessions):
                envelope = session.envelope
                in_transaction = envelope is not None and envelope.mail_from is not None
                if session.transport is not None and not in_transaction:
                    session.transport.close()
                    closed += 1
            return closed

        future = asyncio.run_coroutine_threadsafe(close(), controller.loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), 10)


class _SoakHandler(_Handler):
    mailbox: SoakMailbox

    def __init__(self, mailbox: SoakMailbox) -> None:
        super().__init__(mailbox)
        self.mailbox = mailbox

    async def handle_DATA(self, server: SMTP, _session: Any, envelope: Envelope) -> str:
        mailbox = self.mailbox
        refusal = mailbox.log.data_refusal(list(envelope.rcpt_tos))
        if refusal is not None:
            return refusal
        if mailbox.replies:
            return mailbox.replies.pop(0)
        dropped = mailbox.drop_after_data > 0
        if dropped:
            mailbox.drop_after_data -= 1
        mailbox.log.record(envelope, mailbox.replica, dropped)
        if dropped and server.transport is not None:
            server.transport.close()  # taken, but the 250 never reaches the client
        return "250 OK queued"


@dataclass
class MailService:
    """The mail server as the soak's faults see it: one mailbox per replica."""

    mailboxes: list[SoakMailbox]
    log: MailLog

    @classmethod
    def create(cls, ports: list[int]) -> MailService:
        log = MailLog()
        return cls(
            [SoakMailbox(port, log=log, replica=index) for index, port in enumerate(ports)], log
        )

    def start(self) -> None:
        for mailbox in self.mailboxes:
            mailbox.start()

    def stop(self) -> None:
        for mailbox in self.mailboxes:
            mailbox.stop()

    async def close_idle_sessions(self) -> int:
        return sum([await mailbox.close_idle_sessions() for mailbox in self.mailboxes])
