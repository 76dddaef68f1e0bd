"""Map a validated event to its deliveries: which notifications fire, to whom, under which
ledger key (NOTIFICATIONS.md 6.1)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from herald.catalog.config import WebhookTarget
from herald.catalog.optional import UnsubscribeScope
from herald.catalog.recipients import Directory, Recipient, resolve, resolve_webhooks
from herald.catalog.spec import Catalog, NotificationSpec
from herald.schemas.envelope import Event


@dataclass(frozen=True, slots=True)
class Delivery:
    """One email of one notification instance to one recipient."""

    spec: NotificationSpec
    recipient: Recipient
    key: str  # the 6.1 instance key, hashed: unique in the ledger, and the Message-ID's seed
    extras: Mapping[str, Any] = field(default_factory=dict)  # {days}, {usage_percent}

    @property
    def unsubscribe(self) -> UnsubscribeScope | None:
        """The (category, partner) its recipient may unsubscribe from; None: mandatory mail."""
        return self.recipient.unsubscribe


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One webhook POST of one notification instance (NOTIFICATIONS.md 6.3)."""

    spec: NotificationSpec
    target: WebhookTarget
    key: str


@dataclass(frozen=True, slots=True)
class Planned:
    """What one event asks for: the deliveries, and the notifications that found nobody."""

    deliveries: list[Delivery]
    without_recipients: list[NotificationSpec]
    webhooks: list[WebhookDelivery] = field(default_factory=list)


def instance_key(notification: str, *parts: str) -> str:
    """A stable hex digest of a notification instance key (NOTIFICATIONS.md 6.1).

    Parts are length-prefixed so that no two different tuples can produce the same text.
    """
    digest = hashlib.sha256(notification.encode())
    for part in parts:
        encoded = part.encode()
        digest.update(len(encoded).to_bytes(4, "big"))
        digest.update(encoded)
    return digest.hexdigest()


def plan_event(event: Event, catalog: Catalog, directory: Directory) -> Planned:
    deliveries: list[Delivery] = []
    webhooks: list[WebhookDelivery] = []
    nobody: list[NotificationSpec] = []
    data: Any = event.data
    for spec in catalog.triggered_by(event.type):
        if not spec.holds(event.data):
            continue
        if "webhook" in spec.channels:
            webhooks.extend(
                WebhookDelivery(
                    spec=spec,
                    target=target,
                    key=instance_key(spec.id, event.source, event.id, "webhook", target.url),
                )
                for target in resolve_webhooks(spec.recipients, data, directory)
            )
        recipients = resolve(spec.recipients, data, directory) if "email" in spec.channels else []
        if not recipients:
            if not any(webhook.spec is spec for webhook in webhooks):
                nobody.append(spec)
            continue
        deliveries.extend(
            Delivery(
                spec=spec,
                recipient=recipient,
                key=instance_key(spec.id, event.source, event.id, recipient.address_key),
            )
            for recipient in recipients
        )
    return Planned(deliveries=deliveries, without_recipients=nobody, webhooks=webhooks)
