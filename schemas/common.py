"""Shared data objects of EVENTS.md section 5 (Person, Organization, Order, Plan, ...)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from herald.schemas.base import ContractModel
from herald.schemas.scalars import (
    Currency,
    DecimalString,
    Email,
    Id,
    Locale,
    LongText,
    Name,
    NonNegativeInt,
    ShortText,
    Timestamp,
    Url,
)

BillingPeriodKind = Literal["monthly", "annual"]


class Person(ContractModel):
    id: Id
    email: Email
    name: Name
    locale: Locale = "en"


class Organization(ContractModel):
    id: Id
    name: Name
    kind: Literal["end_customer", "reseller", "distributor"]
    parent_id: Id | None = None
    contact: Person
    account_manager: Person | None = None
    vendor_account_manager: Person | None = None


class CustomerParties(ContractModel):
    """The field group of EVENTS.md 5.3, at the top level of `data`."""

    customer: Organization
    partner: Organization
    distributor: Organization | None = None

    @model_validator(mode="after")
    def _parties_are_consistent(self) -> Self:
        if self.customer.kind != "end_customer":
            raise ValueError("customer.kind must be end_customer")
        if self.customer.parent_id != self.partner.id:
            raise ValueError("customer.parent_id must equal partner.id")
        if self.partner.kind not in ("reseller", "distributor"):
            raise ValueError("partner.kind must be reseller or distributor")
        under_distributor = self.partner.kind == "reseller" and self.partner.parent_id is not None
        if under_distributor:
            if self.distributor is None:
                raise ValueError(
                    "distributor: required when partner is a reseller with a parent_id"
                )
            if self.distributor.kind != "distributor":
                raise ValueError("distributor.kind must be distributor")
            if self.distributor.id != self.partner.parent_id:
                raise ValueError("distributor.id must equal partner.parent_id")
        elif self.distributor is not None:
            raise ValueError("distributor: must be absent unless partner is a reseller under one")
        return self

    @property
    def reseller_under_distributor(self) -> bool:
        return self.partner.kind == "reseller" and self.partner.parent_id is not None


class Money(ContractModel):
    amount: DecimalString
    currency: Currency


class Status(ContractModel):
    id: Id
    name: Name


class Error(ContractModel):
    code: ShortText
    message: LongText


class Change(ContractModel):
    field: Name
    old_value: ShortText | None = None
    new_value: ShortText | None = None


class Offer(ContractModel):
    id: Id
    name: Name
    vendor_name: Name | None = None
    provisioning_mode: Literal["automatic", "manual"] = "automatic"
    provisioning_contact: Person | None = None

    @model_validator(mode="after")
    def _manual_needs_contact(self) -> Self:
        if self.provisioning_mode == "manual" and self.provisioning_contact is None:
            raise ValueError("provisioning_contact: required when provisioning_mode is manual")
        return self


class OrderLine(ContractModel):
    id: Id
    kind: Literal["offer", "license_plan", "branding"]
    action: Literal["new", "change_billing_period", "change_quantity", "other_change"]
    product_name: Name
    quantity: NonNegativeInt
    previous_quantity: NonNegativeInt | None = None
    billing_period: BillingPeriodKind | None = None
    previous_billing_period: BillingPeriodKind | None = None
    offer: Offer | None = None
    plan_id: Id | None = None
    price: Money | None = None

    @model_validator(mode="after")
    def _conditional_fields(self) -> Self:
        if self.action == "change_quantity" and self.previous_quantity is None:
            raise ValueError("previous_quantity: required when action is change_quantity")
        if self.action == "change_billing_period" and self.previous_billing_period is None:
            raise ValueError(
                "previous_billing_period: required when action is change_billing_period"
            )
        if self.kind == "offer" and self.offer is None:
            raise ValueError("offer: required when kind is offer")
        if self.kind == "license_plan" and self.plan_id is None:
            raise ValueError("plan_id: required when kind is license_plan")
        return self


class Order(ContractModel):
    id: Id
    storefront: Literal["marketplace", "partner_portal"]
    status: Status
    placed_at: Timestamp
    placed_by: Person
    lines: list[OrderLine] = Field(min_length=1, max_length=1000)
    total: Money | None = None
    notify_contacts: list[Person] = Field(default_factory=list, max_length=100)
    url: Url | None = None


class Proposal(ContractModel):
    id: Id
    lines: list[OrderLine] = Field(min_length=1, max_length=1000)
    total: Money | None = None
    valid_until: Timestamp | None = None
    url: Url | None = None


class Quote(ContractModel):
    id: Id
    name: Name
    author: Person
    recipient: Person
    total: Money | None = None
    valid_until: Timestamp | None = None
    url: Url | None = None


class Subscription(ContractModel):
    id: Id
    name: Name
    offer: Offer
    quantity: NonNegativeInt
    auto_renew: bool
    term_started_at: Timestamp
    term_ends_at: Timestamp
    price: Money | None = None
    url: Url | None = None


class Plan(ContractModel):
    id: Id
    name: Name
    quantity: NonNegativeInt
    billing_period: BillingPeriodKind
    term_started_at: Timestamp
    expires_at: Timestamp
    renewal_decision: Literal["none", "renew", "expire"]
    includes_otj: bool = False


class Trial(ContractModel):
    id: Id
    kind: Literal["company", "end_user", "offer"]
    started_at: Timestamp
    ends_at: Timestamp
    product_name: Name | None = None
    offer: Offer | None = None
    subscription_id: Id | None = None

    @model_validator(mode="after")
    def _offer_trial_needs_offer(self) -> Self:
        if self.kind == "offer" and self.offer is None:
            raise ValueError("offer: required when kind is offer")
        return self


class Tenant(ContractModel):
    id: Id
    default_domain: Name
    name: Name | None = None


class Domain(ContractModel):
    id: Id
    name: Name
    kind: Literal["calling", "microsoft_365"]


class TeamRoom(ContractModel):
    id: Id
    name: Name
    alias: Name | None = None


class Endpoint(ContractModel):
    id: Id
    name: Name
    alias: Name | None = None


class ClassicSubscription(ContractModel):
    id: Id
    display_name: Name
    product_name: Name | None = None


class InvitationCode(ContractModel):
    id: Id
    code: Name
    product_name: Name | None = None


class OtjLicense(ContractModel):
    id: Id
    plan_id: Id
    quantity: NonNegativeInt | None = None
    valid_until: Timestamp | None = None


class InteropSubscription(ContractModel):
    id: Id
    service: Literal["google_meet", "teams", "teams_rooms"]
    licensed_capacity: NonNegativeInt | None = None


class BillingPeriod(ContractModel):
    starts_at: Timestamp
    ends_at: Timestamp


class CatalogChange(ContractModel):
    offer: Offer
    change: Literal["added", "updated", "price_changed", "retired"]
    summary: LongText | None = None
    previous_price: Money | None = None
    price: Money | None = None
    effective_at: Timestamp | None = None
