"""Every event type Herald understands, mapped to the schema of its `data`."""

from __future__ import annotations

from schemas import orders
from schemas.base import ContractModel

EVENT_SCHEMAS: dict[str, type[ContractModel]] = {
    **orders.EVENT_TYPES,
}
