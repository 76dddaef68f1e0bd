"""The `recipients` section of Herald's config file (NOTIFICATIONS.md 3.3): optional recipients
per partner id and category. Never event data."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from herald.schemas.scalars import Email, Url

Category = Literal[
    "orders",
    "renewals",
    "trial_activity",
    "otj_distribution",
    "team_rooms",
    "interop",
    "domains",
    "catalog_changes",
]
CATEGORIES: tuple[str, ...] = Category.__args__  # type: ignore[attr-defined]


class WebhookTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: Url
    secret_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]


class CategoryRecipients(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    emails: list[Email] = Field(default_factory=list)
    include_partner_contact: bool = False
    include_customer_contact: bool = False
    webhooks: list[WebhookTarget] = Field(default_factory=list)


# partner id -> category -> recipients
RecipientsConfig = dict[str, dict[Category, CategoryRecipients]]
