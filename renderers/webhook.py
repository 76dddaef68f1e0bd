"""The CloudEvent body of a `catalog_changed` webhook (NOTIFICATIONS.md 6.3).

Only the partner's id and name, the catalog name and the changes: no contact people (an offer's
`provisioning_contact` is left out).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from herald.catalog.plan import WebhookDelivery
from herald.schemas.envelope import Event


@dataclass(frozen=True, slots=True)
class OutgoingWebhook:
    notification: str
    key: str
    url: str
    secret_name: str
    body: bytes


def _money(value: Any) -> dict[str, str] | None:
    return None if value is None else {"amount": value.amount, "currency": value.currency}


def _change(change: Any) -> dict[str, Any]:
    offer = change.offer
    described: dict[str, Any] = {
        "offer": {"id": offer.id, "name": offer.name, "vendor_name": offer.vendor_name},
        "change": change.change,
        "summary": change.summary,
        "previous_price": _money(change.previous_price),
        "price": _money(change.price),
        "effective_at": None if change.effective_at is None else change.effective_at.isoformat(),
    }
    return described


def render_webhook(event: Event, delivery: WebhookDelivery) -> OutgoingWebhook:
    data: Any = event.data
    document = {
        "specversion": "1.0",
        "type": f"notifications.{delivery.spec.id}",
        "source": "/herald",
        "id": delivery.key,
        "time": event.time.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": {
            "partner": {"id": data.partner.id, "name": data.partner.name},
            "catalog_name": data.catalog_name,
            "changes": [_change(change) for change in data.changes],
        },
    }
    return OutgoingWebhook(
        notification=delivery.spec.id,
        key=delivery.key,
        url=delivery.target.url,
        secret_name=delivery.target.secret_name,
        body=json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
    )
