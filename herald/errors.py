"""Herald's own exception tree; library errors are translated into it at each stage's boundary.

    HeraldError
    ├── RejectedMessage        bad input: dead-letter with a machine-readable reason, never retry
    ├── TransientError         may succeed later: the delivery is redelivered with backoff
    │   └── TransientSendError an SMTP connection error, timeout or 4xx reply
    │       └── SmtpAuthenticationError  530/535: our credentials, not the message
    ├── PermanentError         will never succeed for this item: record it and move on
    │   ├── PermanentSendError a 5xx reply
    │   └── PermanentWebhookError  a webhook receiver's 4xx other than 408 and 429
    ├── ConfigurationError     the service itself is misconfigured (settings, catalog, templates)
    └── OperatorError          a command cannot reach or use something outside Herald
        ├── BrokerUnreachable      RabbitMQ refused or did not answer (host:port, vhost, user)
        ├── LedgerUnreachable      the ledger's database could not be opened
        ├── CannotListen           a server could not bind its host:port
        └── OutputPathUnusable     a folder or file a command writes is not usable

The `herald` command ends on a ConfigurationError or an OperatorError with one line and the
error's `exit_code` (README, "Exit codes"); every other error is a bug and keeps its traceback.

This module imports nothing from Herald, so every stage can depend on it.
"""

from __future__ import annotations

import errno


class HeraldError(Exception):
    """Base of every error Herald raises on purpose."""


class RejectedMessage(HeraldError):
    """A message that violates the contract; it goes to the dead-letter exchange.

    `reason` is one of the codes of EVENTS.md section 11; `detail` is human-readable, names
    failing locations only (never field values), and is cut to 1,024 characters.
    """

    MAX_DETAIL = 1024

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail[: self.MAX_DETAIL]
        super().__init__(f"{reason}: {self.detail}")


class TransientError(HeraldError):
    """A failure that may go away by itself (broker, database or mail server unavailable).

    `retry_reason` is the low-cardinality class a retry is counted under in the metrics;
    `retry_after_seconds`, when set, is the earliest the failing party asked to be tried again
    (an HTTP `Retry-After`): the broker-side retry waits at least that long."""

    retry_reason: str = "transient"
    retry_after_seconds: float | None = None


class PermanentError(HeraldError):
    """A failure that retrying cannot fix for this item."""


class TransientSendError(TransientError):
    """The mail server could not take the message now (connection error, timeout, 4xx)."""

    retry_reason = "smtp_connection"

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        if code is not None and type(self).retry_reason == "smtp_connection":
            self.retry_reason = "smtp_reply"
        super().__init__(message)


class SmtpAuthenticationError(TransientSendError):
    """The mail server refused Herald's credentials (530/535): a configuration fault. Messages
    are neither failed nor dead-lettered for it; consuming pauses until a login succeeds."""

    retry_reason = "smtp_auth"


class PermanentSendError(PermanentError):
    """The mail server refused the message for good (5xx). `enhanced` is the reply's RFC 3463
    status code (`5.1.1`), `stage` where it came (`mail`, `rcpt`, `data`), `reply` the server's
    text (which may name the address: for the ledger, never for logs or metrics)."""

    def __init__(
        self,
        message: str,
        code: int | None = None,
        *,
        enhanced: str | None = None,
        stage: str | None = None,
        reply: str | None = None,
    ) -> None:
        self.code = code
        self.enhanced = enhanced
        self.stage = stage
        self.reply = reply
        super().__init__(message)


class PermanentWebhookError(PermanentError):
    """A webhook receiver refused the request for good (NOTIFICATIONS.md 6.3: a 4xx other than
    408 and 429), or the request could not be built. `status` is the HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class ConfigurationError(HeraldError):
    """Herald's own configuration is wrong; start-up stops with this message."""

    exit_code = 2  # as click's usage errors


class OperatorError(HeraldError):
    """Something outside Herald that a command needs is missing or refuses: `what` failed and
    `where` (host:port, path, setting; never a password). The message is `what (where)`."""

    exit_code = 1

    def __init__(self, what: str, where: str) -> None:
        self.what = what
        self.where = where
        super().__init__(f"{what} ({where})")


class BrokerUnreachable(OperatorError):
    """RabbitMQ could not be reached, or refused the connection (login, vhost)."""

    exit_code = 3


class LedgerUnreachable(OperatorError):
    """The ledger's database could not be reached or opened."""

    exit_code = 4


class CannotListen(OperatorError):
    """A server could not listen on its host:port (in use, not an address here, bad port)."""

    exit_code = 5

    @classmethod
    def on(
        cls, listener: str, host: str, port: int, error: OSError | OverflowError, setting: str
    ) -> CannotListen:
        """A failed bind, e.g. `metrics and probes cannot listen: address already in use
        (0.0.0.0:9464, HERALD_HTTP_PORT)`; `setting` is what sets the port."""
        if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
            reason = "address already in use"
        elif isinstance(error, OSError) and error.strerror:
            reason = error.strerror.lower()
        else:  # OverflowError: a port outside 0-65535
            reason = "not a port (0-65535)"
        return cls(f"{listener} cannot listen: {reason}", f"{host}:{port}, {setting}")


class OutputPathUnusable(OperatorError):
    """A folder or file a command writes cannot be created or written."""

    exit_code = 6


def error_class(error: BaseException) -> str:
    """The low-cardinality class of an error, for the per-stage error metrics."""
    if isinstance(error, RejectedMessage):
        return "rejected"
    if isinstance(error, SmtpAuthenticationError):
        return "auth"
    if isinstance(error, TransientError):
        return "transient"
    if isinstance(error, PermanentError):
        return "permanent"
    if isinstance(error, ConfigurationError):
        return "configuration"
    return "unexpected"


def retry_reason(error: BaseException) -> str:
    """Why a delivery is retried, as a metric label (`TransientError.retry_reason`)."""
    return error.retry_reason if isinstance(error, TransientError) else "unexpected"
