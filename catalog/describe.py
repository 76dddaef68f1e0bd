"""A plain description of every catalog entry, for `herald catalog` and other tools."""

from __future__ import annotations

from typing import Any

from herald.catalog.spec import Catalog, NotificationSpec

PRODUCTS = {"marketplace": "marketplace", "partner_portal": "partner portal"}


def _trigger(spec: NotificationSpec) -> str:
    if spec.series is not None:
        offsets = ", ".join(str(offset) for offset in spec.series.offsets)
        return f"schedule: {offsets} days before {spec.series.anchor}"
    if spec.kind == "threshold":
        return f"threshold on {spec.trigger}"
    return spec.trigger


def describe(catalog: Catalog) -> list[dict[str, Any]]:
    return [
        {
            "id": spec.id,
            "source": PRODUCTS[spec.product],
            "kind": spec.kind,
            "trigger": _trigger(spec),
            "when": spec.when,
            "recipients": list(spec.recipients),
            "channel": list(spec.channels),
        }
        for spec in catalog
    ]
