"""Crash injection for the fault suite: `HERALD_FAULT_AT=<point>[:<text>]` ends the process with
`os._exit(70)` when a delivery reaches `<point>` (and, with `:<text>`, only when its event id
contains `<text>`). Unset, every check is one comparison against None.

Points, in the order a delivery meets them:

    on_receive    the consumer took the delivery (and counted a redelivered one's attempt),
                  nothing else happened: a poison message
    after_claim   the ledger holds the delivery's claim, nothing was sent
    after_250     the mail server answered 250, the ledger has not recorded it
    after_record  the ledger recorded the email as sent, the event is not marked processed
    before_ack    the event is processed and marked, the broker has not had the ack

and one of the bounce listener (`service/bounce_smtp.py`), matched against the key prefix of the
delivery a report names:

    feedback_before_record  a bounce or complaint report was read and verified, the ledger
                            has not recorded it, the sending MTA has had no reply

It imports nothing of Herald, so any stage may call it.
"""

from __future__ import annotations

import os
import sys

POINTS = (
    "on_receive",
    "after_claim",
    "after_250",
    "after_record",
    "before_ack",
    "feedback_before_record",
)
EXIT_CODE = 70


def _parse(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    point, _, text = value.partition(":")
    if point not in POINTS:
        raise SystemExit(f"HERALD_FAULT_AT: unknown point {point!r}; one of {', '.join(POINTS)}")
    return point, text


_ARMED = _parse(os.environ.get("HERALD_FAULT_AT"))


def armed() -> str | None:
    """The armed point (for a start-up warning), or None."""
    return None if _ARMED is None else _ARMED[0]


def crash_point(point: str, event_id: str | None) -> None:
    """End the process here if the fault suite armed this point for this event."""
    if _ARMED is None or _ARMED[0] != point:
        return
    if _ARMED[1] and (event_id is None or _ARMED[1] not in event_id):
        return
    sys.stderr.write(f"fault injection: exiting at {point}\n")
    sys.stderr.flush()
    os._exit(EXIT_CODE)
