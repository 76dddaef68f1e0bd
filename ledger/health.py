"""Is the ledger usable? The SQLite file's identity, the outcome of the last transaction, and a
cheap periodic probe, for `/readyz`, the metrics and failing closed.

A SQLite ledger whose file is deleted or replaced while Herald runs would go on writing into the
unlinked file (whose records vanish at the next start, so everything is sent again) or, on a
new connection, into a new empty file. Herald remembers the file's device and inode when it
opens the ledger and compares them with the path's before every commit (one `os.stat`, about
1 us) and on every health check: once they differ, the ledger fails closed for good. Every
operation raises `LedgerUnavailable` (a TransientError: nothing is claimed, sent or acked, the
messages wait in the broker) until an operator restarts Herald on a restored or fresh ledger.

For PostgreSQL (and a SQLite ledger that cannot be written) the ledger is unhealthy while its
last transaction or probe failed; the next success makes it healthy again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from herald.errors import TransientError

log = logging.getLogger(__name__)

# The causes a failed health check is counted under (`herald_ledger_errors_total{error}`).
FILE_DELETED = "file_deleted"
FILE_REPLACED = "file_replaced"
UNAVAILABLE = "unavailable"
CAUSES = (FILE_DELETED, FILE_REPLACED, UNAVAILABLE)


class LedgerUnavailable(TransientError):
    """The database could not be reached or answered with an error."""

    retry_reason = "ledger"


class LedgerHealth:
    def __init__(self, path: str | None) -> None:
        """`path`: the SQLite file, or None (PostgreSQL, in-memory SQLite)."""
        self.path = path
        self._identity: tuple[int, int] | None = None
        self._fault: str | None = None  # sticky: the file was deleted or replaced
        self._fault_cause: str | None = None
        self._failing: str | None = None  # the last transaction or probe failed (its class)
        self.last_success = 0.0  # time.monotonic() of the last successful unit of work
        # Called with the cause of every failed check (metrics).
        self.on_failed_check: Callable[[str], None] | None = None

    def remember_file(self) -> None:
        """Take the identity of the file the ledger has just opened."""
        if self.path is not None:
            stat = os.stat(self.path)
            self._identity = (stat.st_dev, stat.st_ino)

    @property
    def ok(self) -> bool:
        return self._fault is None and self._failing is None

    @property
    def problem(self) -> str | None:
        """Why the ledger is not usable, for `/readyz`; None when it is."""
        if self._fault is not None:
            return self._fault
        if self._failing is not None:
            return f"ledger unavailable ({self._failing})"
        return None

    def refuse_if_failed(self) -> None:
        """Raise `LedgerUnavailable` once the file was found deleted or replaced (no system
        call: runs before a transaction takes a connection, which could create a new file)."""
        if self._fault is not None:
            raise LedgerUnavailable(self._fault)

    def guard(self) -> None:
        """Raise `LedgerUnavailable` unless the ledger's file is still the one it opened.
        Runs before each transaction and before its commit (in the ledger thread on SQLite)."""
        if self._fault is not None:
            raise LedgerUnavailable(self._fault)
        identity = self._identity
        if identity is None:
            return
        assert self.path is not None
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._fail(FILE_DELETED, f"ledger: SQLite file {self.path} was deleted")
        else:
            if (stat.st_dev, stat.st_ino) != identity:
                self._fail(FILE_REPLACED, f"ledger: SQLite file {self.path} was replaced")
        if self._fault is not None:
            raise LedgerUnavailable(self._fault)

    def _fail(self, cause: str, fault: str) -> None:
        if self._fault is None:
            self._fault, self._fault_cause = fault, cause
            log.error(
                "%s while Herald runs: the ledger fails closed (nothing is claimed, sent or "
                "acked) until Herald is restarted on a restored or new ledger",
                fault,
                extra={"path": self.path, "reason": cause},
            )

    def outcome(self, error: BaseException | None) -> None:
        """Record the outcome of a unit of work (a transaction or a probe)."""
        if error is None:
            self.last_success = time.monotonic()
            if self._failing is not None:
                self._failing = None
                log.warning("ledger available again")
        elif isinstance(error, LedgerUnavailable) and self._fault is None:
            cause = error.__cause__
            failing = type(cause).__name__ if cause is not None else "error"
            if self._failing is None:
                log.error("ledger unavailable", extra={"error": failing})
            self._failing = failing

    def checked(self) -> None:
        """Count the result of one periodic check (metrics)."""
        if self.ok or self.on_failed_check is None:
            return
        if self._fault is not None:
            self.on_failed_check(self._fault_cause or UNAVAILABLE)
        else:
            self.on_failed_check(UNAVAILABLE)
