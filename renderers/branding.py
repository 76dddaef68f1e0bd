"""The `brand` section of the config file and the `{brand}` rule of NOTIFICATIONS.md 3.4.6."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from schemas.scalars import Url

BrandName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class PartnerBrand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: BrandName


class Links(BaseModel):
    """Sign-in pages the emails point to ("sign-in link (configuration)" in the catalog)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partner_portal: Url = "https://partners.cloudportal.example/sign-in"
    analytics: Url = "https://analytics.cloudportal.example/sign-in"
    service: Url = "https://service.cloudportal.example/sign-in"
    marketplace: Url = "https://marketplace.cloudportal.example/sign-in"


class BrandConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: BrandName = "Cloud Portal"
    partners: dict[str, PartnerBrand] = Field(default_factory=dict)
    links: Links = Field(default_factory=Links)

    def name_for(self, data: Any) -> str:
        """The branded partner is `data.partner`, else `data.organization` when it is a reseller
        or distributor; unbranded partners get the default."""
        partner = getattr(data, "partner", None)
        if partner is None:
            organization = getattr(data, "organization", None)
            if organization is not None and organization.kind in ("reseller", "distributor"):
                partner = organization
        if partner is None:
            return self.default
        branded = self.partners.get(partner.id)
        return self.default if branded is None else branded.name
