"""Who may unsubscribe (issue 19): a recipient on an email only through configured lists
(`config(<category>)`: the list's emails, `include_partner_contact`, `include_customer_contact`)
carries its (category, partner); one that any other role names is mandatory
(`catalog/optional.py`). Checked for every catalog entry of every category of NOTIFICATIONS.md
3.3."""

from __future__ import annotations

from typing import Any

import pytest

from herald.catalog.config import CATEGORIES, CategoryRecipients
from herald.catalog.optional import SCOPE_LIMIT, UnsubscribeScope
from herald.catalog.recipients import ROLES, configured_category, resolve
from herald.catalog.spec import NotificationSpec
from herald.schemas.examples import example_names, load_example
from herald.tools.preview import applies
from tests import support

LIST = "copies@bluepeak.example"
WITH_CONFIG = [
    spec for spec in support.catalog() if any(configured_category(role) for role in spec.recipients)
]


def category_of(spec: NotificationSpec[Any]) -> str:
    (category,) = [c for role in spec.recipients if (c := configured_category(role))]
    return category


def example_data(spec: NotificationSpec[Any]) -> Any:
    """The data of the first example the entry applies to that names a partner."""
    for name in example_names():
        event = support.event_of(load_example(name))
        if applies(spec, event) and getattr(event.data, "partner", None) is not None:
            return event.data
    raise AssertionError(f"no example with a partner triggers {spec.id}")


def everything_configured(partner_id: str, category: str) -> Any:
    entry = CategoryRecipients(
        emails=[LIST], include_partner_contact=True, include_customer_contact=True
    )
    return {partner_id: {category: entry}}


def test_every_category_of_the_contract_is_used_by_some_entry() -> None:
    assert {category_of(spec) for spec in WITH_CONFIG} == set(CATEGORIES)


@pytest.mark.parametrize("spec", WITH_CONFIG, ids=lambda spec: spec.id)
def test_list_members_may_unsubscribe_and_role_holders_may_not(spec: NotificationSpec[Any]) -> None:
    # Given an entry's example, with its category configured to the full (list, partner
    # contact, customer contact)
    data = example_data(spec)
    category = category_of(spec)
    directory = everything_configured(data.partner.id, category)
    # When its recipients are resolved
    recipients = {r.address_key: r for r in resolve(spec.recipients, data, directory)}
    # Then the list's own address is unsubscribable from (category, partner) ...
    optional = UnsubscribeScope(category, data.partner.id)
    assert recipients[LIST].unsubscribe == optional
    # ... every address a mandatory role gives is not, even when the list adds it too ...
    by_role = {
        r.address_key
        for role in spec.recipients
        if configured_category(role) is None
        for r in ROLES[role](data, {})
    }
    for address in by_role:
        assert recipients[address].unsubscribe is None, address
    # ... and the rest (added only by the list's include_* flags) is unsubscribable.
    for address, recipient in recipients.items():
        if address not in by_role:
            assert recipient.unsubscribe == optional, address


def test_without_configuration_nobody_may_unsubscribe() -> None:
    for name in example_names():
        for delivery in support.plan(load_example(name)).deliveries:
            assert delivery.unsubscribe is None, (name, delivery.spec.id)


def test_a_list_address_that_is_also_the_order_placer_is_mandatory() -> None:
    # Given the order placer's address (in other case) on the partner's orders list
    placed = load_example("orders.order.placed")
    placer = placed["data"]["order"]["placed_by"]["email"]
    partner = placed["data"]["partner"]["id"]
    entry = CategoryRecipients(emails=[placer.upper(), LIST])
    # When the order confirmation is planned
    deliveries = support.plan(placed, {partner: {"orders": entry}}).deliveries
    by_address = {d.recipient.address_key: d for d in deliveries}
    # Then the placer gets it by role, without unsubscribe; the list's other address may go
    assert by_address[placer.lower()].unsubscribe is None
    assert by_address[placer.lower()].recipient.role == "order_placer"
    assert by_address[LIST].unsubscribe == UnsubscribeScope("orders", partner)
    assert by_address[LIST].spec.id == "order_confirmation_new"


def test_the_customer_contact_is_mandatory_on_team_rooms_but_an_optional_copy_on_domains() -> None:
    # team_room_activated names customer_contact itself; calling_domain_created does not.
    for name, category, expected_optional in [
        ("subscriptions.team_room.activated", "team_rooms", False),
        ("users.domain.created", "domains", True),
    ]:
        document = load_example(name)
        partner = document["data"]["partner"]["id"]
        contact = document["data"]["customer"]["contact"]["email"].lower()
        entry = CategoryRecipients(include_customer_contact=True)
        (delivery,) = [
            d
            for d in support.plan(document, {partner: {category: entry}}).deliveries
            if d.recipient.address_key == contact
        ]
        expected = UnsubscribeScope(category, partner) if expected_optional else None
        assert delivery.unsubscribe == expected, name


def test_the_partner_contact_is_mandatory_when_the_row_names_it() -> None:
    # calling_domain_created: partner_contact; config(domains) with the partner contact too.
    document = load_example("users.domain.created")
    partner = document["data"]["partner"]["id"]
    contact = document["data"]["partner"]["contact"]["email"].lower()
    entry = CategoryRecipients(include_partner_contact=True, emails=[LIST])
    deliveries = support.plan(document, {partner: {"domains": entry}}).deliveries
    by_address = {d.recipient.address_key: d for d in deliveries}
    assert by_address[contact].unsubscribe is None
    assert by_address[LIST].unsubscribe == UnsubscribeScope("domains", partner)


def test_the_scope_names_category_and_partner_and_fits_the_column() -> None:
    scope = UnsubscribeScope("renewals", "org-1204")
    assert scope.scope == "category:renewals/partner:org-1204"
    assert UnsubscribeScope.parse(scope.scope) == scope
    assert UnsubscribeScope.parse("all") is None
    assert UnsubscribeScope.parse("orders") is None
    long = UnsubscribeScope("catalog_changes", "p" * 128)
    assert len(long.scope) <= SCOPE_LIMIT
    assert long.scope.startswith("category:catalog_changes/partner-sha256:")
    assert long.scope != UnsubscribeScope("catalog_changes", "p" * 127 + "q").scope
    assert UnsubscribeScope.parse(long.scope) is None
    for category in CATEGORIES:
        assert len(UnsubscribeScope(category, "x" * 128).scope) <= SCOPE_LIMIT
