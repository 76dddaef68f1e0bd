"""`NotificationSpec`: one declarative catalog entry, and the catalog that validates them.

Entries are typed by the `data` model they read: `NotificationSpec(trigger_model=OrderPlaced,
condition=...)` is a `NotificationSpec[OrderPlaced]`, so mypy checks the condition against
`OrderPlaced`, and `Catalog.check_triggers` checks at start-up that `OrderPlaced` is the model
the contract validates the trigger's `data` with. A `ReminderSeries` is typed the same way by
its arming events' models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, cast

from typing_extensions import TypeVar

from herald.errors import ConfigurationError
from herald.schemas.base import ContractModel

Product = Literal["marketplace", "partner_portal"]
Channel = Literal["email", "webhook"]
Kind = Literal["event", "schedule", "threshold"]

# The model of an entry's trigger. A bare `NotificationSpec` (the catalog's view, where entries
# of every model stand together) is `NotificationSpec[Any]`.
Model = TypeVar("Model", bound=ContractModel, default=Any)
# The models of a series' arming events. Where mypy cannot infer them (a lambda over several
# models), they default to `ContractModel`: a condition that reads an event's field then fails
# the type check instead of passing unchecked.
Armed = TypeVar("Armed", bound=ContractModel, default=ContractModel)


@dataclass(frozen=True, slots=True)
class ReminderSeries(Generic[Armed]):
    """A reminder series of NOTIFICATIONS.md 4.1: when a scheduled notification fires.

    Paths (`entity`, `anchor`, `cycle_key`) are dotted paths into the latest applied event's
    `data`; `armed_while` is evaluated on that `data`. `arming_events` maps each arming event
    type to its `data` model, so `armed_while` is checked against every one of them.

    Build a series outside its entry, as a constant annotated `ReminderSeries[<models>]` or
    a function returning that: inside `NotificationSpec(series=...)` the field's type would be
    the context mypy infers the models from, and it reads any model. (Not
    `ReminderSeries[<models>](...)`: Python cannot set `__orig_class__` on a slotted instance.)
    """

    entity: str
    anchor: str
    offsets: tuple[int, ...]
    cycle_key: str
    armed_while: Callable[[Armed], bool]
    # A dict is not hashable: leaving it out of the hash keeps the series (and its entry) usable
    # as a key, as before; equality still compares it.
    arming_events: Mapping[str, type[Armed]] = field(hash=False)
    ending_events: tuple[str, ...]
    armed_while_text: str = ""

    def armed(self, data: ContractModel) -> bool:
        """Whether `armed_while` holds for `data`, the `data` of one of `arming_events`.

        The one place where a series' model is taken on trust: `data` was validated with the
        schema `EVENT_SCHEMAS` gives its event type, which `Catalog.check_triggers` proved is
        the model `arming_events` names.
        """
        return self.armed_while(cast(Armed, data))


@dataclass(frozen=True, slots=True)
class NotificationSpec(Generic[Model]):
    """One row of NOTIFICATIONS.md section 2.

    `trigger` is the event type and `trigger_model` the model of its `data`; `condition`, if
    any, is evaluated on that typed `data`; `recipients` are role names of section 3.1
    (`config(<category>)` for configured lists), in the order of the catalog row, which decides
    whose name and locale win on a duplicate. `when` is the human-readable condition shown by
    `herald catalog`.

    `kind` is `event` (sent when `trigger` arrives and `condition` holds), `schedule` (sent by
    the scheduler per `series`; `trigger` is then the arming event whose `data` renders it) or
    `threshold` (evaluated on `trigger` by the threshold rules of NOTIFICATIONS.md 5).

    `essential` marks what a person needs to get into their account (activation, recovery,
    two-factor reset, welcome): a complaint does not block it, a hard bounce still does.
    """

    id: str
    product: Product
    trigger: str
    trigger_model: type[Model]
    recipients: tuple[str, ...]
    when: str = ""
    condition: Callable[[Model], bool] | None = None
    channels: tuple[Channel, ...] = ("email",)
    kind: Kind = "event"
    series: ReminderSeries[Any] | None = None
    essential: bool = False

    def holds(self, data: ContractModel) -> bool:
        """Whether the entry's condition holds for `data`, the `data` of a `trigger` event.

        The one place where an entry's model is taken on trust: `data` was validated with the
        schema `EVENT_SCHEMAS` gives `trigger`, which `Catalog.check_triggers` proved is
        `trigger_model`.
        """
        return self.condition is None or self.condition(cast(Model, data))


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

    def check_triggers(self, event_schemas: Mapping[str, type[ContractModel]]) -> None:
        """Fail fast when an entry's trigger is not an event type Herald can validate, or an
        entry declares another model for an event's `data` than the one it is validated with
        (the models its conditions were type-checked against)."""
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
            declared: list[tuple[str, type[ContractModel]]] = [(spec.trigger, spec.trigger_model)]
            if spec.series is not None:
                # The reminder renders from the trigger's `data`, and `herald preview` arms the
                # series on it: `armed_while` must be typed for it.
                if spec.trigger not in spec.series.arming_events:
                    raise ConfigurationError(
                        f"catalog: notification {spec.id!r}: its trigger {spec.trigger!r} is "
                        "not one of its series' arming events"
                    )
                declared.extend(spec.series.arming_events.items())
            wrong = [
                f"{event} carries {event_schemas[event].__name__}, not {model.__name__}"
                for event, model in declared
                if event_schemas[event] is not model
            ]
            if wrong:
                raise ConfigurationError(
                    f"catalog: notification {spec.id!r} declares the wrong data models: "
                    + "; ".join(wrong)
                )
