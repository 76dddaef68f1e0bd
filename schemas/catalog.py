"""`data` schemas of the catalog domain (EVENTS.md section 10)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from herald.schemas.base import ContractModel
from herald.schemas.common import CatalogChange, Offer, Organization
from herald.schemas.scalars import Name


class CatalogChanged(ContractModel):
    partner: Organization
    changes: list[CatalogChange] = Field(min_length=1, max_length=1000)
    catalog_name: Name | None = None


class OfferAvailabilityChanged(ContractModel):
    organization: Organization
    granted_by: Organization | None = None
    offers_added: list[Offer] = Field(max_length=1000)
    offers_removed: list[Offer] = Field(max_length=1000)

    @model_validator(mode="after")
    def _something_changed(self) -> Self:
        if not self.offers_added and not self.offers_removed:
            raise ValueError("offers_added, offers_removed: must not both be empty")
        return self


EVENT_TYPES: dict[str, type[ContractModel]] = {
    "catalog.catalog.changed": CatalogChanged,
    "catalog.offer_availability.changed": OfferAvailabilityChanged,
}
