"""Render any notification from an example event, whatever its kind, without sending it.

Event notifications render as the pipeline would. Scheduled reminders render from their arming
event with `{days}` set to the series' first offset; threshold alerts from a usage report with
`{usage_percent}` computed as in NOTIFICATIONS.md 5. Used by the template tests and previews.
"""

from __future__ import annotations

from typing import Any

from catalog.plan import Delivery, instance_key
from catalog.recipients import Directory, resolve
from catalog.spec import NotificationSpec
from renderers.email import EmailRenderer, OutgoingEmail
from schemas.envelope import Event


def applies(spec: NotificationSpec, event: Event) -> bool:
    """Whether `event` would make `spec` fire (or arm it, for a reminder)."""
    data: Any = event.data
    if spec.series is not None:
        return event.type in (spec.trigger, *spec.series.arming_events) and bool(
            spec.series.armed_while(data)
        )
    if spec.kind == "threshold":
        return event.type == spec.trigger
    return event.type == spec.trigger and bool(spec.condition(data))


def extras(spec: NotificationSpec, event: Event) -> dict[str, Any]:
    data: Any = event.data
    if spec.series is not None:
        return {"days": spec.series.offsets[0]}
    if spec.kind == "threshold":
        capacity, peak = data.licensed_capacity, data.peak_concurrent_calls
        return {"usage_percent": (100 * peak) // capacity if capacity else 0}
    return {}


def render_preview(
    spec: NotificationSpec, event: Event, renderer: EmailRenderer, directory: Directory
) -> list[OutgoingEmail]:
    recipients = resolve(spec.recipients, event.data, directory)
    return [
        renderer.render(
            event,
            Delivery(
                spec=spec,
                recipient=recipient,
                key=instance_key(spec.id, event.source, event.id, recipient.address_key),
            ),
            extras(spec, event),
        )
        for recipient in recipients
    ]
