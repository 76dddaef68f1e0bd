"""Recipient roles (NOTIFICATIONS.md 3.1) and their resolution rules (3.4).

A role is a function of the event's `data` (and, for `config(<category>)`, of the configured
recipients) returning zero or more `Recipient`s. Roles read `data` by attribute name, so one role
serves every event type that carries the field.

A recipient resolved only from configured lists carries the (category, partner) it may
unsubscribe from (`catalog/optional.py`); one that any other role also names carries none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from herald.catalog.config import CATEGORIES, CategoryRecipients, WebhookTarget
from herald.catalog.optional import UnsubscribeScope

_CONFIG_ROLE = re.compile(r"^config\((?P<category>[a-z_]+)\)$")


@dataclass(frozen=True, slots=True)
class Recipient:
    """One addressee. `line_ids` narrows an order email to that recipient's lines
    (`provisioning_contact`); None means the whole order. `unsubscribe` is the (category,
    partner) an optional recipient may unsubscribe from; None for a mandatory one."""

    email: str
    name: str
    locale: str
    role: str
    line_ids: tuple[str, ...] | None = None
    unsubscribe: UnsubscribeScope | None = None

    @property
    def address_key(self) -> str:
        return self.email.lower()


# partner id -> category -> configured recipients
Directory = Mapping[str, Mapping[Any, CategoryRecipients]]
Resolver = Callable[[Any, Directory], list[Recipient]]


def _person(person: Any, role: str) -> list[Recipient]:
    if person is None:
        return []
    return [Recipient(email=person.email, name=person.name, locale=person.locale, role=role)]


def _contact_of(data: Any, attribute: str) -> Any:
    organization = getattr(data, attribute, None)
    return None if organization is None else organization.contact


def _reseller_under_distributor(data: Any) -> bool:
    partner = getattr(data, "partner", None)
    return partner is not None and partner.kind == "reseller" and partner.parent_id is not None


def _actor(data: Any, _: Directory) -> list[Recipient]:
    return _person(getattr(data, "actor", None), "actor")


def _order_placer(data: Any, _: Directory) -> list[Recipient]:
    return _person(data.order.placed_by, "order_placer")


def _customer_contact(data: Any, _: Directory) -> list[Recipient]:
    return _person(_contact_of(data, "customer"), "customer_contact")


def _partner_contact(data: Any, _: Directory) -> list[Recipient]:
    return _person(_contact_of(data, "partner"), "partner_contact")


def _reseller_contact(data: Any, _: Directory) -> list[Recipient]:
    partner = getattr(data, "partner", None)
    if partner is None or partner.kind != "reseller":
        return []
    return _person(partner.contact, "reseller_contact")


def _distributor_contact(data: Any, _: Directory) -> list[Recipient]:
    distributor = getattr(data, "distributor", None)
    if distributor is not None:
        return _person(distributor.contact, "distributor_contact")
    partner = getattr(data, "partner", None)
    if partner is not None and partner.kind == "distributor":
        return _person(partner.contact, "distributor_contact")
    return []


def _partner_account_manager(data: Any, _: Directory) -> list[Recipient]:
    customer = getattr(data, "customer", None)
    if customer is None or _reseller_under_distributor(data):
        return []
    return _person(customer.account_manager, "partner_account_manager")


def _vendor_account_manager(data: Any, _: Directory) -> list[Recipient]:
    customer = getattr(data, "customer", None)
    return (
        []
        if customer is None
        else _person(customer.vendor_account_manager, "vendor_account_manager")
    )


def _user(data: Any, _: Directory) -> list[Recipient]:
    return _person(getattr(data, "user", None), "user")


def _invitee(data: Any, _: Directory) -> list[Recipient]:
    return _person(data.invitee, "invitee")


def _quote_author(data: Any, _: Directory) -> list[Recipient]:
    return _person(data.quote.author, "quote_author")


def _quote_recipient(data: Any, _: Directory) -> list[Recipient]:
    return _person(data.quote.recipient, "quote_recipient")


def _proposal_recipient(data: Any, _: Directory) -> list[Recipient]:
    recipient = getattr(data, "recipient", None)
    return _person(
        recipient if recipient is not None else data.customer.contact, "proposal_recipient"
    )


def _order_contacts(data: Any, _: Directory) -> list[Recipient]:
    return [
        recipient
        for person in data.order.notify_contacts
        for recipient in _person(person, "order_contacts")
    ]


def _organization_contact(data: Any, _: Directory) -> list[Recipient]:
    return _person(_contact_of(data, "organization"), "organization_contact")


def _parent_contact(data: Any, _: Directory) -> list[Recipient]:
    return _person(_contact_of(data, "parent"), "parent_contact")


def _provisioning_contact(data: Any, _: Directory) -> list[Recipient]:
    """One recipient per distinct contact, carrying the ids of that contact's lines only."""
    by_address: dict[str, tuple[Any, list[str]]] = {}
    for line in data.order.lines:
        offer = line.offer
        if offer is None or offer.provisioning_mode != "manual":
            continue
        contact = offer.provisioning_contact
        by_address.setdefault(contact.email.lower(), (contact, []))[1].append(line.id)
    return [
        Recipient(
            email=person.email,
            name=person.name,
            locale=person.locale,
            role="provisioning_contact",
            line_ids=tuple(line_ids),
        )
        for person, line_ids in by_address.values()
    ]


def _configured(category: str) -> Resolver:
    role = f"config({category})"

    def resolve(data: Any, directory: Directory) -> list[Recipient]:
        partner = getattr(data, "partner", None)
        if partner is None:
            return []
        entry = directory.get(partner.id, {}).get(category)
        if entry is None:
            return []
        found = [
            Recipient(email=address, name="", locale="en", role=role) for address in entry.emails
        ]
        if entry.include_partner_contact:
            found += _person(partner.contact, role)
        if entry.include_customer_contact:
            found += _person(_contact_of(data, "customer"), role)
        optional = UnsubscribeScope(category, partner.id)
        return [replace(recipient, unsubscribe=optional) for recipient in found]

    return resolve


ROLES: dict[str, Resolver] = {
    "actor": _actor,
    "order_placer": _order_placer,
    "customer_contact": _customer_contact,
    "partner_contact": _partner_contact,
    "reseller_contact": _reseller_contact,
    "distributor_contact": _distributor_contact,
    "partner_account_manager": _partner_account_manager,
    "vendor_account_manager": _vendor_account_manager,
    "user": _user,
    "invitee": _invitee,
    "quote_author": _quote_author,
    "quote_recipient": _quote_recipient,
    "proposal_recipient": _proposal_recipient,
    "order_contacts": _order_contacts,
    "organization_contact": _organization_contact,
    "parent_contact": _parent_contact,
    "provisioning_contact": _provisioning_contact,
    **{f"config({category})": _configured(category) for category in CATEGORIES},
}

# Recipient groups of NOTIFICATIONS.md 3.2.
ORDER_GROUP = (
    "order_placer",
    "partner_account_manager",
    "vendor_account_manager",
    "config(orders)",
)
RENEWAL_GROUP = (
    "partner_account_manager",
    "vendor_account_manager",
    "config(renewals)",
)


def is_known_role(role: str) -> bool:
    return role in ROLES


def configured_category(role: str) -> str | None:
    match = _CONFIG_ROLE.match(role)
    return None if match is None else match.group("category")


def resolve(roles: tuple[str, ...], data: Any, directory: Directory) -> list[Recipient]:
    """The union of `roles`, deduplicated by address case-insensitively; the first role listed
    supplies the name and locale (NOTIFICATIONS.md 3.4 rules 1 and 2). An address that any
    mandatory role gives is mandatory, whichever role came first (`catalog/optional.py`)."""
    unique: dict[str, Recipient] = {}
    mandatory: set[str] = set()
    for role in roles:
        for recipient in ROLES[role](data, directory):
            unique.setdefault(recipient.address_key, recipient)
            if recipient.unsubscribe is None:
                mandatory.add(recipient.address_key)
    return [
        replace(recipient, unsubscribe=None) if key in mandatory else recipient
        for key, recipient in unique.items()
    ]


def resolve_webhooks(
    roles: tuple[str, ...], data: Any, directory: Directory
) -> list[WebhookTarget]:
    """The webhooks configured under the `config(<category>)` roles, deduplicated by URL."""
    partner = getattr(data, "partner", None)
    if partner is None:
        return []
    unique: dict[str, WebhookTarget] = {}
    for role in roles:
        category = configured_category(role)
        entry = None if category is None else directory.get(partner.id, {}).get(category)
        for target in entry.webhooks if entry is not None else []:
            unique.setdefault(target.url, target)
    return list(unique.values())
