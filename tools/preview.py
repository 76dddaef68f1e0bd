"""Render any notification from an example event, whatever its kind, without sending it.

Event notifications render as the pipeline would. Scheduled reminders render from their arming
event with `{days}` set to the series' first offset; threshold alerts from a usage report with
`{usage_percent}` computed as in NOTIFICATIONS.md 5. Used by `herald preview`, `herald gallery`
and the template tests.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from functools import cache
from typing import Any

from herald.catalog.config import CATEGORIES, CategoryRecipients
from herald.catalog.plan import Delivery, instance_key
from herald.catalog.recipients import Directory, resolve
from herald.catalog.spec import Catalog, NotificationSpec
from herald.catalog.thresholds import evaluate
from herald.consumers.delivery import InboundMessage
from herald.errors import ConfigurationError, RejectedMessage
from herald.renderers.branding import BrandConfig
from herald.renderers.email import EmailRenderer, OutgoingEmail
from herald.renderers.environment import Templates
from herald.renderers.locales import canonical
from herald.schemas.decode import decode
from herald.schemas.envelope import Event
from herald.schemas.examples import example_names, load_example
from herald.schemas.interop import TeamsUsageReported

PREVIEW_COPIES = "copies@partner.example"
NO_PARTNER = "this event carries no partner to brand it with"


def event_from(document: dict[str, Any]) -> Event:
    """Validate a CloudEvents document exactly as the consumer would."""
    try:
        decoded = decode(
            InboundMessage(
                body=json.dumps(document).encode(),
                routing_key=str(document.get("type", "")),
                content_type="application/cloudevents+json",
                content_encoding=None,
                message_id=str(document.get("id", "preview")),
                queue="preview",
            )
        )
    except RejectedMessage as exc:
        raise ConfigurationError(f"the event is invalid ({exc.reason}): {exc.detail}") from None
    if not isinstance(decoded, Event):
        raise ConfigurationError(f"the contract defines no event type {decoded.type!r}")
    return decoded


@cache
def _example_partners() -> frozenset[str]:
    return frozenset(
        partner["id"]
        for name in example_names()
        if (partner := load_example(name)["data"].get("partner"))
    )


def preview_directory(*extra_partners: str) -> Directory:
    """Configured copies for every partner of every example (and `extra_partners`), so that
    config-only notifications (OTJ distribution, catalog changes) have a recipient too."""
    partners = _example_partners() | set(extra_partners)
    entry = CategoryRecipients(emails=[PREVIEW_COPIES])
    return {partner: dict.fromkeys(CATEGORIES, entry) for partner in sorted(partners)}


def example_for(spec: NotificationSpec, directory: Directory) -> dict[str, Any]:
    """The first shipped example (by name) that renders `spec` for at least one recipient."""
    for name in example_names():
        document = load_example(name)
        event = event_from(document)
        if applies(spec, event) and resolve(spec.recipients, event.data, directory):
            return document
    raise ConfigurationError(f"no example event renders {spec.id}")


def persons(value: Any) -> Iterator[dict[str, Any]]:
    """Every Person (schemas/common.py) in an event's `data`, as its JSON object."""
    if isinstance(value, dict):
        if "email" in value and "id" in value:
            yield value
        for child in value.values():
            yield from persons(child)
    elif isinstance(value, list):
        for child in value:
            yield from persons(child)


def with_locale(document: dict[str, Any], locale: str) -> dict[str, Any]:
    """A copy in which every person carried by the event has `locale`."""
    changed = copy.deepcopy(document)
    for person in persons(changed["data"]):
        person["locale"] = locale
    return changed


def partner_of(document: dict[str, Any]) -> dict[str, Any] | None:
    """The organisation an event's `{brand}` is looked up by (`BrandConfig.brand_for`):
    `data.partner`, else `data.organization` when it is a reseller or distributor."""
    data = document.get("data")
    if not isinstance(data, dict):
        return None
    partner = data.get("partner")
    if isinstance(partner, dict):
        return partner
    organization = data.get("organization")
    if isinstance(organization, dict) and organization.get("kind") in ("reseller", "distributor"):
        return organization
    return None


def with_partner(document: dict[str, Any], partner_id: str) -> dict[str, Any]:
    """A copy whose partner (the organisation `{brand}` is looked up by) is `partner_id`, every
    reference to the partner's old id (a customer's `parent_id`, ...) following it."""
    data = document["data"]
    partner = partner_of(document)
    if partner is None:
        raise ConfigurationError(NO_PARTNER)
    old_id = partner["id"]

    def replaced(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: replaced(child) for key, child in value.items()}
        if isinstance(value, list):
            return [replaced(child) for child in value]
        return partner_id if value == old_id else value

    return {**document, "data": replaced(data)}


@dataclass(frozen=True, slots=True)
class PreviewRequest:
    locale: str | None = None
    partner: str | None = None
    document: dict[str, Any] | None = None  # else the first example that renders it


def preview(
    spec: NotificationSpec, request: PreviewRequest, renderer: EmailRenderer
) -> list[OutgoingEmail]:
    """Every email `spec` would send for the request's event (or its example), with the
    overrides applied; people first, configured copies last."""
    extra = () if request.partner is None else (request.partner,)
    directory = preview_directory(*extra)
    document = request.document or example_for(spec, directory)
    if request.locale is not None:
        document = with_locale(document, request.locale)
    if request.partner is not None:
        document = with_partner(document, request.partner)
    event = event_from(document)
    if not applies(spec, event):
        raise ConfigurationError(f"this {event.type} event does not trigger {spec.id}")
    emails = render_preview(spec, event, renderer, directory)
    if not emails:
        raise ConfigurationError(f"{spec.id} has no recipient in this event")
    return sorted(emails, key=lambda email: email.envelope_to == PREVIEW_COPIES)


def unknown_partner(brand: BrandConfig, partner: str | None) -> str | None:
    """What to warn when `partner` has no brand of its own in the config: its emails are
    rendered with the default brand (None when it has one, or none was asked for)."""
    if partner is None or partner in brand.partners:
        return None
    known = ", ".join(sorted(brand.partners)) or "none"
    return (
        f"partner {partner!r} is not in the config's brand.partners (configured: {known}): "
        f"rendered with the default brand {brand.default!r}"
    )


def unshipped_locale(templates: Templates, notification: str, locale: str | None) -> str | None:
    """What to warn when `notification` has no templates in the language of `locale`: it is
    rendered in the fallback's (None when its language is shipped: `de-AT` in German)."""
    if locale is None:
        return None
    chosen = templates.template_set(notification, locale).locale
    requested = canonical(locale)
    if requested == chosen or requested.startswith(chosen + "-"):
        return None
    shipped = ", ".join(templates.locales(notification))
    return (
        f"locale {locale!r} is not shipped for {notification} (it ships {shipped}): "
        f"rendered in {chosen}"
    )


def email_parts(email: OutgoingEmail) -> tuple[EmailMessage, str, str]:
    """The parsed message, its text part and its HTML part."""
    message = message_from_bytes(email.content, policy=policy.default)
    assert isinstance(message, EmailMessage)
    text, html = (message.get_body(preferencelist=(kind,)) for kind in ("plain", "html"))
    assert text is not None and html is not None
    return message, str(text.get_content()), str(html.get_content())


def find_spec(catalog: Catalog, notification: str) -> NotificationSpec:
    try:
        return catalog[notification]
    except KeyError:
        raise ConfigurationError(
            f"unknown notification {notification!r} (see `herald catalog`)"
        ) from None


def applies(spec: NotificationSpec, event: Event) -> bool:
    """Whether `event` would make `spec` fire (or arm it, for a reminder)."""
    if spec.series is not None:
        arming = (spec.trigger, *spec.series.arming_events)
        return event.type in arming and spec.series.armed(event.data)
    if spec.kind == "threshold":
        # Only a report that crosses this very threshold (NOTIFICATIONS.md 5): an 85 % report
        # is not an example of oversubscription. Judged as if received when it was reported.
        if event.type != spec.trigger or not isinstance(event.data, TeamsUsageReported):
            return False
        return spec.id in evaluate(event.data, event.time, frozenset()).fire
    return event.type == spec.trigger and spec.holds(event.data)


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
