"""`NotificationSpec`: one declarative catalog entry, and the catalog that validates them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from herald.errors import ConfigurationError

Product = Literal["marketplace", "partner_portal"]
Channel = Literal["email", "webhook"]
Kind = Literal["event", "schedule", "threshold"]
Condition = Callable[[Any], bool]


def always(_data: Any) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class ReminderSeries:
    """A reminder series of NOTIFICATIONS.md 4.1: when a scheduled notification fires.

    Paths (`entity`, `anchor`, `cycle_key`) are dotted paths into the latest applied event's
    `data`; `armed_while` is evaluated on that `data`.
    """

    entity: str
    anchor: str
    offsets: tuple[int, ...]
    cycle_key: str
    armed_while: Condition
    arming_events: tuple[str, ...]
    ending_events: tuple[str, ...]
    armed_while_text: str = ""


@dataclass(frozen=True, slots=True)
class NotificationSpec:
    """One row of NOTIFICATIONS.md section 2.

    `trigger` is the event type; `condition` is evaluated on the event's typed `data`;
    `recipients` are role names of section 3.1 (`config(<category>)` for configured lists), in
    the order of the catalog row, which decides whose name and locale win on a duplicate.
    `when` is the human-readable condition shown by `herald catalog`.

    `kind` is `event` (sent when `trigger` arrives and `condition` holds), `schedule` (sent by
    the scheduler per `series`; `trigger` is then the arming event whose `data` renders it) or
    `threshold` (evaluated on `trigger` by the threshold rules of NOTIFICATIONS.md 5).
    """

    id: str
    product: Product
    trigger: str
    recipients: tuple[str, ...]
    when: str = ""
    condition: Condition = always
    channels: tuple[Channel, ...] = ("email",)
    kind: Kind = "event"
    series: ReminderSeries | None = None


class Catalog:
    """Every notification spec, indexed by id and by trigger event type."""

    def __init__(self, specs: Iterable[NotificationSpec], known_roles: Callable[[str], bool]):
        self._by_id: dict[str, NotificationSpec] = {}
        self._by_trigger: dict[str, list[NotificationSpec]] = {}
        for spec in specs:
            if spec.id in self._by_id:
                raise ConfigurationError(f"catalog: notification {spec.id!r} is defined twice")
            unknown = [role for role in spec.recipients if not known_roles(role)]
            if unknown:
                raise ConfigurationError(
                    f"catalog: notification {spec.id!r} names unknown recipient roles {unknown}"
                )
            if not spec.recipients:
                raise ConfigurationError(f"catalog: notification {spec.id!r} has no recipients")
            if (spec.kind == "schedule") != (spec.series is not None):
                raise ConfigurationError(
                    f"catalog: notification {spec.id!r}: a reminder series goes with kind schedule"
                )
            self._by_id[spec.id] = spec
            if spec.kind == "event":
                self._by_trigger.setdefault(spec.trigger, []).append(spec)

    def __iter__(self) -> Iterator[NotificationSpec]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __getitem__(self, notification_id: str) -> NotificationSpec:
        return self._by_id[notification_id]

    def triggered_by(self, event_type: str) -> list[NotificationSpec]:
        """The event-kind notifications `event_type` may trigger (conditions not yet applied)."""
        return self._by_trigger.get(event_type, [])

    def check_triggers(self, event_schemas: Mapping[str, object]) -> None:
        """Fail fast when an entry's trigger is not an event type Herald can validate."""
        for spec in self:
            events = (
                (spec.trigger,)
                if spec.series is None
                else (spec.trigger, *spec.series.arming_events, *spec.series.ending_events)
            )
            unknown = [event for event in events if event not in event_schemas]
            if unknown:
                raise ConfigurationError(
                    f"catalog: notification {spec.id!r} names unknown event types {unknown}"
                )
