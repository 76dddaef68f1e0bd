"""How a `herald` command ends when the operator, not the code, has to act: one line naming what
failed and where, and a documented exit code (README, "Exit codes"), never a traceback.

    0  done
    1  a replay or suppression operation failed (its own message)
    2  usage or configuration error (click's usage errors, ConfigurationError)
    3  broker unreachable or refused (BrokerUnreachable)
    4  ledger unreachable (LedgerUnreachable)
    5  cannot listen on a host:port (CannotListen)
    6  an output folder or file is not usable (OutputPathUnusable, or an OSError naming a file)

The stages raise Herald's errors at the boundary where a library's error happens (the broker
connection, `SqlLedger.open`, the HTTP and SMTP listeners); the `herald` command group hands
what reaches it to `operator_error` and `report`. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging

from herald.errors import ConfigurationError, OperatorError, OutputPathUnusable
from herald.service.logs import tell


def operator_error(error: BaseException) -> ConfigurationError | OperatorError | None:
    """`error` as one the operator can act on, or None for a bug."""
    if isinstance(error, ConfigurationError | OperatorError):
        return error
    if isinstance(error, OSError) and error.filename is not None:
        # A file or folder a command writes (a folder that is a file, a read-only mount);
        # commands reading a file given to them report it themselves.
        reason = (error.strerror or type(error).__name__).lower()
        return OutputPathUnusable(f"cannot write: {reason}", str(error.filename))
    return None


def report(error: ConfigurationError | OperatorError) -> int:
    """Tell the operator in one line (a JSON record under `herald run`); the exit code."""
    fields: dict[str, object] = {"exit_code": error.exit_code}
    if isinstance(error, OperatorError):
        fields.update(what=error.what, where=error.where)
    tell(logging.CRITICAL, str(error), **fields)
    return error.exit_code
