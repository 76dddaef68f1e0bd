"""Catalog entries of the orders domain (NOTIFICATIONS.md 2.1, 18 types)."""

from __future__ import annotations

from typing import Protocol

from herald.catalog.recipients import ORDER_GROUP
from herald.catalog.spec import NotificationSpec
from herald.schemas.common import Order
from herald.schemas.orders import (
    OrderActivated,
    OrderCanceled,
    OrderPlaced,
    OrderProvisioned,
    OrderProvisioningFailed,
    OrderStatusChanged,
    OrderSubmitted,
    ProposalCreated,
    QuoteAccepted,
    QuoteCanceled,
    QuoteChangeRequested,
    QuoteCreated,
    QuoteRejected,
)


class _AboutOrder(Protocol):
    """The `data` of every orders.order.* event."""

    @property
    def order(self) -> Order: ...


def _marketplace(data: _AboutOrder) -> bool:
    return data.order.storefront == "marketplace"


def _partner_portal(data: _AboutOrder) -> bool:
    return data.order.storefront == "partner_portal"


def _plan_lines(data: _AboutOrder, action: str) -> bool:
    return any(line.kind == "license_plan" and line.action == action for line in data.order.lines)


def _has_line_kind(data: _AboutOrder, kind: str) -> bool:
    return any(line.kind == kind for line in data.order.lines)


def _has_manual_offer(data: _AboutOrder) -> bool:
    return any(
        line.offer is not None and line.offer.provisioning_mode == "manual"
        for line in data.order.lines
    )


# A tuple, not annotated: each entry keeps its own `NotificationSpec[<model>]` type. A
# `list[NotificationSpec]` annotation would be the context of every entry and make mypy read
# their conditions' `data` as Any.
SPECS = (
    NotificationSpec(
        id="order_placed",
        product="marketplace",
        trigger="orders.order.placed",
        trigger_model=OrderPlaced,
        when="order.storefront = marketplace",
        condition=_marketplace,
        recipients=("order_placer", "customer_contact", "reseller_contact", "distributor_contact"),
    ),
    NotificationSpec(
        id="purchase_notification",
        product="marketplace",
        trigger="orders.order.submitted",
        trigger_model=OrderSubmitted,
        when="order.storefront = marketplace",
        condition=_marketplace,
        recipients=("order_placer", "reseller_contact", "distributor_contact"),
    ),
    NotificationSpec(
        id="offer_provision_success",
        product="marketplace",
        trigger="orders.order.provisioned",
        trigger_model=OrderProvisioned,
        when="order.storefront = marketplace",
        condition=_marketplace,
        recipients=("order_placer", "customer_contact", "reseller_contact"),
    ),
    NotificationSpec(
        id="offer_provisioning_error",
        product="marketplace",
        trigger="orders.order.provisioning_failed",
        trigger_model=OrderProvisioningFailed,
        when="order.storefront = marketplace",
        condition=_marketplace,
        recipients=("order_placer", "reseller_contact", "distributor_contact"),
    ),
    NotificationSpec(
        id="provisioning_details",
        product="marketplace",
        trigger="orders.order.submitted",
        trigger_model=OrderSubmitted,
        when="order.storefront = marketplace and a line's offer is provisioned manually",
        condition=lambda data: _marketplace(data) and _has_manual_offer(data),
        recipients=("provisioning_contact",),
    ),
    NotificationSpec(
        id="order_status_changed",
        product="marketplace",
        trigger="orders.order.status_changed",
        trigger_model=OrderStatusChanged,
        when="order.storefront = marketplace",
        condition=_marketplace,
        recipients=("order_placer", "reseller_contact", "distributor_contact"),
    ),
    NotificationSpec(
        id="new_proposal",
        product="marketplace",
        trigger="orders.proposal.created",
        trigger_model=ProposalCreated,
        recipients=("proposal_recipient",),
    ),
    NotificationSpec(
        id="new_quote",
        product="marketplace",
        trigger="orders.quote.created",
        trigger_model=QuoteCreated,
        recipients=("quote_recipient",),
    ),
    NotificationSpec(
        id="quote_change_requested",
        product="marketplace",
        trigger="orders.quote.change_requested",
        trigger_model=QuoteChangeRequested,
        recipients=("quote_author", "partner_contact"),
    ),
    NotificationSpec(
        id="quote_accepted",
        product="marketplace",
        trigger="orders.quote.accepted",
        trigger_model=QuoteAccepted,
        recipients=("quote_author", "partner_contact"),
    ),
    NotificationSpec(
        id="quote_rejected",
        product="marketplace",
        trigger="orders.quote.rejected",
        trigger_model=QuoteRejected,
        recipients=("quote_author", "partner_contact"),
    ),
    NotificationSpec(
        id="quote_canceled",
        product="marketplace",
        trigger="orders.quote.canceled",
        trigger_model=QuoteCanceled,
        recipients=("quote_recipient",),
    ),
    NotificationSpec(
        id="order_confirmation_new",
        product="partner_portal",
        trigger="orders.order.placed",
        trigger_model=OrderPlaced,
        when="order.storefront = partner_portal and a license plan line has action = new",
        condition=lambda data: _partner_portal(data) and _plan_lines(data, "new"),
        recipients=ORDER_GROUP,
    ),
    NotificationSpec(
        id="order_confirmation_change",
        product="partner_portal",
        trigger="orders.order.placed",
        trigger_model=OrderPlaced,
        when=(
            "order.storefront = partner_portal, no license plan line is new, and one has "
            "action = change_billing_period"
        ),
        condition=lambda data: (
            _partner_portal(data)
            and not _plan_lines(data, "new")
            and _plan_lines(data, "change_billing_period")
        ),
        recipients=ORDER_GROUP,
    ),
    NotificationSpec(
        id="change_confirmation",
        product="partner_portal",
        trigger="orders.order.placed",
        trigger_model=OrderPlaced,
        when=(
            "order.storefront = partner_portal, no license plan line is new or changes the "
            "billing period, and one has action = change_quantity"
        ),
        condition=lambda data: (
            _partner_portal(data)
            and not _plan_lines(data, "new")
            and not _plan_lines(data, "change_billing_period")
            and _plan_lines(data, "change_quantity")
        ),
        recipients=ORDER_GROUP,
    ),
    NotificationSpec(
        id="cancellation_confirmation",
        product="partner_portal",
        trigger="orders.order.canceled",
        trigger_model=OrderCanceled,
        when="order.storefront = partner_portal and a line has kind = license_plan",
        condition=lambda data: _partner_portal(data) and _has_line_kind(data, "license_plan"),
        recipients=ORDER_GROUP,
    ),
    NotificationSpec(
        id="branding_instructions",
        product="partner_portal",
        trigger="orders.order.placed",
        trigger_model=OrderPlaced,
        when="order.storefront = partner_portal and a line has kind = branding",
        condition=lambda data: _partner_portal(data) and _has_line_kind(data, "branding"),
        recipients=("order_contacts",),
    ),
    NotificationSpec(
        id="branding_active",
        product="partner_portal",
        trigger="orders.order.activated",
        trigger_model=OrderActivated,
        when="a line has kind = branding",
        condition=lambda data: _has_line_kind(data, "branding"),
        recipients=("order_contacts",),
    ),
)
