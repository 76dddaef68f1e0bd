"""The full catalog: every domain module's entries, validated when it loads."""

from __future__ import annotations

from catalog import orders
from catalog.recipients import is_known_role
from catalog.spec import Catalog, NotificationSpec

ALL_SPECS: list[NotificationSpec] = [*orders.SPECS]


def load_catalog() -> Catalog:
    return Catalog(ALL_SPECS, known_roles=is_known_role)
