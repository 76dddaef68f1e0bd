"""Catalog entries of the catalog domain (NOTIFICATIONS.md 2.5, 2 types)."""

from __future__ import annotations

from herald.catalog.spec import NotificationSpec
from herald.schemas.catalog import CatalogChanged, OfferAvailabilityChanged

# A tuple, not annotated: each entry keeps its own `NotificationSpec[<model>]` type (see
# catalog/orders.py).
SPECS = (
    NotificationSpec(
        id="catalog_changed",
        product="marketplace",
        trigger="catalog.catalog.changed",
        trigger_model=CatalogChanged,
        recipients=("config(catalog_changes)",),
        channels=("email", "webhook"),
    ),
    NotificationSpec(
        id="offer_availability_changed",
        product="marketplace",
        trigger="catalog.offer_availability.changed",
        trigger_model=OfferAvailabilityChanged,
        when="offers_added is not empty",
        condition=lambda data: len(data.offers_added) > 0,
        recipients=("organization_contact",),
    ),
)
