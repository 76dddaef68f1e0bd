"""What the listeners of reports after the 250 need from the rest of Herald: a ledger that
records a verified report, and an observer that counts each outcome (`service/metrics.py`)."""

from __future__ import annotations

from typing import Protocol

from herald.ledger.feedback import FeedbackOutcome, FeedbackReport


class FeedbackLedger(Protocol):
    async def record_feedback(self, report: FeedbackReport) -> FeedbackOutcome | None: ...


class FeedbackObserver(Protocol):
    def feedback(self, source: str, outcome: str, reason: str = "") -> None: ...
