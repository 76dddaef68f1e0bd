"""Catalog entries of the orders domain (NOTIFICATIONS.md 2.1, 18 types)."""

from __future__ import annotations

from typing import Any

from herald.catalog.recipients import ORDER_GROUP
from herald.catalog.spec import NotificationSpec


def _marketplace(data: Any) -> bool:
    return bool(data.order.storefront == "marketplace")


def _partner_portal(data: Any) -> bool:
    return bool(data.order.storefront == "partner_portal")


def _plan_lines(data: Any, action: str) -> bool:
    return any(line.kind == "license_plan" and line.action == action for line in data.order.lines)


def _has_line_kind(data: Any, kind: str) -> bool:
    return any(line.kind == kind for line in data.order.lines)


def _has_manual_offer(data: Any) -> bool:
    return any(
        line.offer is not None and line.offer.provisioning_mode == "manual"
        for line in data.order.lines
    )


SPECS = [
    NotificationSpec(
        id="order_placed",
        product="marketplace",
        trigger="orders.order.placed",
        when="order.storefront = marketplace",
        condition=_marketplace,
        recipients=("order_placer", "customer_contact", "reseller_contact", "distributor_contact"),
    ),
    NotificationSpec(
        id="purchase_notification",
        product="marketplace",
        trigger="orders.order.submitted",
        when="order.storefront = marketplace",
        condition=_marketplace,
        recipients=("order_placer", "reseller_contact", "distributor_contact"),
    ),
    NotificationSpec(
        id="offer_provision_success",
        product="marketplace",
        trigger="orders.order.provisioned",
        when="order.storefront = marketplace",
        condition=_marketplace,
        recipients=("order_placer", "customer_contact", "reseller_contact"),
    ),
    NotificationSpec(
        id="offer_provisioning_error",
        product="marketplace",
        trigger="orders.order.provisioning_failed",
        when="order.storefront = marketplace",
        condition=_marketplace,
        recipients=("order_placer", "reseller_contact", "distributor_contact"),
    ),
    NotificationSpec(
        id="provisioning_details",
        product="marketplace",
        trigger="orders.order.submitted",
        when="order.storefront = marketplace and a line's offer is provisioned manually",
        condition=lambda data: _marketplace(data) and _has_manual_offer(data),
        recipients=("provisioning_contact",),
    ),
    NotificationSpec(
        id="order_status_changed",
        product="marketplace",
        trigger="orders.order.status_changed",
        when="order.storefront = marketplace",
        condition=_marketplace,
        recipients=("order_placer", "reseller_contact", "distributor_contact"),
    ),
    NotificationSpec(
        id="new_proposal",
        product="marketplace",
        trigger="orders.proposal.created",
        recipients=("proposal_recipient",),
    ),
    NotificationSpec(
        id="new_quote",
        product="marketplace",
        trigger="orders.quote.created",
        recipients=("quote_recipient",),
    ),
    NotificationSpec(
        id="quote_change_requested",
        product="marketplace",
        trigger="orders.quote.change_requested",
        recipients=("quote_author", "partner_contact"),
    ),
    NotificationSpec(
        id="quote_accepted",
        product="marketplace",
        trigger="orders.quote.accepted",
        recipients=("quote_author", "partner_contact"),
    ),
    NotificationSpec(
        id="quote_rejected",
        product="marketplace",
        trigger="orders.quote.rejected",
        recipients=("quote_author", "partner_contact"),
    ),
    NotificationSpec(
        id="quote_canceled",
        product="marketplace",
        trigger="orders.quote.canceled",
        recipients=("quote_recipient",),
    ),
    NotificationSpec(
        id="order_confirmation_new",
        product="partner_portal",
        trigger="orders.order.placed",
        when="order.storefront = partner_portal and a license plan line has action = new",
        condition=lambda data: _partner_portal(data) and _plan_lines(data, "new"),
        recipients=ORDER_GROUP,
    ),
    NotificationSpec(
        id="order_confirmation_change",
        product="partner_portal",
        trigger="orders.order.placed",
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
        when="order.storefront = partner_portal and a line has kind = license_plan",
        condition=lambda data: _partner_portal(data) and _has_line_kind(data, "license_plan"),
        recipients=ORDER_GROUP,
    ),
    NotificationSpec(
        id="branding_instructions",
        product="partner_portal",
        trigger="orders.order.placed",
        when="order.storefront = partner_portal and a line has kind = branding",
        condition=lambda data: _partner_portal(data) and _has_line_kind(data, "branding"),
        recipients=("order_contacts",),
    ),
    NotificationSpec(
        id="branding_active",
        product="partner_portal",
        trigger="orders.order.activated",
        when="a line has kind = branding",
        condition=lambda data: _has_line_kind(data, "branding"),
        recipients=("order_contacts",),
    ),
]
