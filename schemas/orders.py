"""`data` schemas of the orders domain (EVENTS.md section 6)."""

from __future__ import annotations

from pydantic import Field

from herald.schemas.base import ContractModel
from herald.schemas.common import (
    CustomerParties,
    Error,
    Order,
    Person,
    Proposal,
    Quote,
    Status,
    Subscription,
)
from herald.schemas.scalars import Id, LongText


class OrderPlaced(CustomerParties):
    order: Order


class OrderSubmitted(CustomerParties):
    order: Order


class OrderProvisioned(CustomerParties):
    order: Order
    subscriptions: list[Subscription] = Field(default_factory=list, max_length=1000)


class OrderProvisioningFailed(CustomerParties):
    order: Order
    error: Error
    failed_line_ids: list[Id] | None = Field(default=None, max_length=1000)


class OrderStatusChanged(CustomerParties):
    order: Order
    previous_status: Status


class OrderCanceled(CustomerParties):
    order: Order
    actor: Person | None = None
    reason: LongText | None = None


class OrderActivated(CustomerParties):
    order: Order
    actor: Person | None = None


class ProposalCreated(CustomerParties):
    proposal: Proposal
    actor: Person
    recipient: Person | None = None


class QuoteCreated(CustomerParties):
    quote: Quote
    actor: Person | None = None


class QuoteChangeRequested(CustomerParties):
    quote: Quote
    actor: Person
    comment: LongText


class QuoteAccepted(CustomerParties):
    quote: Quote
    actor: Person
    order_id: Id | None = None


class QuoteRejected(CustomerParties):
    quote: Quote
    actor: Person
    reason: LongText | None = None


class QuoteCanceled(CustomerParties):
    quote: Quote
    actor: Person | None = None
    reason: LongText | None = None


EVENT_TYPES: dict[str, type[ContractModel]] = {
    "orders.order.placed": OrderPlaced,
    "orders.order.submitted": OrderSubmitted,
    "orders.order.provisioned": OrderProvisioned,
    "orders.order.provisioning_failed": OrderProvisioningFailed,
    "orders.order.status_changed": OrderStatusChanged,
    "orders.order.canceled": OrderCanceled,
    "orders.order.activated": OrderActivated,
    "orders.proposal.created": ProposalCreated,
    "orders.quote.created": QuoteCreated,
    "orders.quote.change_requested": QuoteChangeRequested,
    "orders.quote.accepted": QuoteAccepted,
    "orders.quote.rejected": QuoteRejected,
    "orders.quote.canceled": QuoteCanceled,
}
