"""The full catalog: every domain module's entries, validated when it loads."""

from __future__ import annotations

from herald.catalog import catalog_domain, interop, orders, subscriptions, users
from herald.catalog.recipients import is_known_role
from herald.catalog.spec import Catalog, NotificationSpec

ALL_SPECS: list[NotificationSpec] = [
    *orders.SPECS,
    *subscriptions.SPECS,
    *users.SPECS,
    *interop.SPECS,
    *catalog_domain.SPECS,
]


def load_catalog() -> Catalog:
    return Catalog(ALL_SPECS, known_roles=is_known_role)
