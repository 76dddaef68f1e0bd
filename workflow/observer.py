"""What the workflow reports as it goes, for metrics: `WorkflowObserver`, the hooks the
pipeline, the reminder scheduler and the threshold alerts call, and `NullObserver`, which
ignores them all (units, tools, a silenced service).

The workflow never names a metric; the wiring hands it `service.metrics.Metrics`, which
implements these hooks the way it implements the consumer's `ConsumerObserver`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Protocol


class WorkflowObserver(Protocol):
    def stage(self, name: str) -> AbstractContextManager[None]:
        """Time one run of a stage (validate, map, render, send); an error it raises is seen
        and raised again."""
        ...

    def ignored(self, domain: str, reason: str) -> None:
        """A valid event Herald does not act on (`unknown_type`)."""
        ...

    def duplicate(self, domain: str) -> None:
        """An event whose (source, id) was already processed."""
        ...

    def event_processed(self, domain: str) -> None:
        """Every notification of an event was settled and the event marked processed."""
        ...

    def notification_settled(self, domain: str, notification: str, outcome: str) -> None:
        """An email notification ended (sent, failed, blocked, suppressed, retrying) or had
        nobody to go to (no_recipients)."""
        ...

    def webhook_settled(self, notification: str, outcome: str) -> None:
        """A webhook delivery ended (sent, suppressed, retrying, failed)."""
        ...

    def accepted(
        self,
        domain: str,
        notification: str,
        since_event: float | None,
        since_delivery: float | None,
    ) -> None:
        """The mail server accepted an email: seconds since the event's `time` (None for a
        reminder, whose event is days old by design) and since the broker delivered it to
        Herald (None when it did not come from the broker)."""
        ...

    def reminder(self, notification: str, outcome: str) -> None:
        """A scheduled reminder was sent, cancelled, missed or found stale."""
        ...

    def pending_reminders(self, count: int) -> None:
        """How many reminders wait for their fire date, after a scheduler pass."""
        ...

    def threshold_alert(self, notification: str, outcome: str) -> None:
        """A usage threshold evaluation fired (sent, suppressed) or was stale."""
        ...


class NullObserver:
    """Sees everything, records nothing."""

    def stage(self, name: str) -> AbstractContextManager[None]:
        return nullcontext()

    def ignored(self, domain: str, reason: str) -> None:
        pass

    def duplicate(self, domain: str) -> None:
        pass

    def event_processed(self, domain: str) -> None:
        pass

    def notification_settled(self, domain: str, notification: str, outcome: str) -> None:
        pass

    def webhook_settled(self, notification: str, outcome: str) -> None:
        pass

    def accepted(
        self,
        domain: str,
        notification: str,
        since_event: float | None,
        since_delivery: float | None,
    ) -> None:
        pass

    def reminder(self, notification: str, outcome: str) -> None:
        pass

    def pending_reminders(self, count: int) -> None:
        pass

    def threshold_alert(self, notification: str, outcome: str) -> None:
        pass
