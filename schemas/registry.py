"""Every event type of the contract (EVENTS.md section 12), mapped to the schema of its `data`."""

from __future__ import annotations

from herald.schemas import catalog, interop, orders, subscriptions, users
from herald.schemas.base import ContractModel

EVENT_SCHEMAS: dict[str, type[ContractModel]] = {
    **orders.EVENT_TYPES,
    **subscriptions.EVENT_TYPES,
    **users.EVENT_TYPES,
    **interop.EVENT_TYPES,
    **catalog.EVENT_TYPES,
}
