"""The `brand` section of the config file: the operator's default brand and each partner's email
branding (display name, logo, primary colour, footer text, reply-to), and the `{brand}` rule of
NOTIFICATIONS.md 3.4.6 that picks one for an event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints

from herald.schemas.scalars import Email, Url

BrandName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Colour = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]
FooterText = Annotated[str, StringConstraints(min_length=1, max_length=500)]

DEFAULT_BRAND_KEY = "default"
DEFAULT_PRIMARY_COLOUR = "#1f3a5f"


@dataclass(frozen=True, slots=True)
class Brand:
    """The branding one email is rendered with; `key` is the partner id, or `default`."""

    key: str
    name: str
    primary_colour: str
    logo_url: str | None = None
    footer: str | None = None
    reply_to: str | None = None

    @property
    def is_partner(self) -> bool:
        return self.key != DEFAULT_BRAND_KEY


class PartnerBrand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # The display name: `{brand}` in subjects and bodies, and the From header's display name.
    name: BrandName = Field(validation_alias=AliasChoices("name", "display_name"))
    logo_url: Url | None = None
    primary_colour: Colour | None = Field(
        default=None, validation_alias=AliasChoices("primary_colour", "primary_color")
    )
    footer: FooterText | None = None
    reply_to: Email | None = None


class Links(BaseModel):
    """Sign-in pages the emails point to ("sign-in link (configuration)" in the catalog)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partner_portal: Url = "https://partners.cloudportal.example/sign-in"
    analytics: Url = "https://analytics.cloudportal.example/sign-in"
    service: Url = "https://service.cloudportal.example/sign-in"
    marketplace: Url = "https://marketplace.cloudportal.example/sign-in"


class BrandConfig(BaseModel):
    """`default` is the operator's brand name; `logo_url`, `primary_colour`, `footer` and
    `reply_to` beside it are the default brand's. A partner brand without a colour or reply-to
    takes the default's; its logo and footer are its own or none."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    default: BrandName = "Cloud Portal"
    logo_url: Url | None = None
    primary_colour: Colour = Field(
        default=DEFAULT_PRIMARY_COLOUR,
        validation_alias=AliasChoices("primary_colour", "primary_color"),
    )
    footer: FooterText | None = None
    reply_to: Email | None = None
    partners: dict[str, PartnerBrand] = Field(default_factory=dict)
    links: Links = Field(default_factory=Links)

    def default_brand(self) -> Brand:
        return Brand(
            key=DEFAULT_BRAND_KEY,
            name=self.default,
            primary_colour=self.primary_colour,
            logo_url=self.logo_url,
            footer=self.footer,
            reply_to=self.reply_to,
        )

    def brand_for(self, data: Any) -> Brand:
        """The branded partner is `data.partner`, else `data.organization` when it is a reseller
        or distributor; unbranded partners get the default brand."""
        partner = getattr(data, "partner", None)
        if partner is None:
            organization = getattr(data, "organization", None)
            if organization is not None and organization.kind in ("reseller", "distributor"):
                partner = organization
        branded = None if partner is None else self.partners.get(partner.id)
        if partner is None or branded is None:
            return self.default_brand()
        return Brand(
            key=partner.id,
            name=branded.name,
            primary_colour=branded.primary_colour or self.primary_colour,
            # The operator's logo and footer would misbrand a partner's email: none instead.
            logo_url=branded.logo_url,
            footer=branded.footer,
            reply_to=branded.reply_to or self.reply_to,
        )
