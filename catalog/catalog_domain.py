"""Catalog entries of the catalog domain (NOTIFICATIONS.md 2.5, 2 types)."""

from __future__ import annotations

from herald.catalog.spec import NotificationSpec

SPECS = [
    NotificationSpec(
        id="catalog_changed",
        product="marketplace",
        trigger="catalog.catalog.changed",
        recipients=("config(catalog_changes)",),
        channels=("email", "webhook"),
    ),
    NotificationSpec(
        id="offer_availability_changed",
        product="marketplace",
        trigger="catalog.offer_availability.changed",
        when="offers_added is not empty",
        condition=lambda data: len(data.offers_added) > 0,
        recipients=("organization_contact",),
    ),
]
