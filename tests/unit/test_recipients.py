"""Recipient roles, groups, configured lists and deduplication (NOTIFICATIONS.md 3)."""

from __future__ import annotations

from typing import Any

import pytest

from herald.catalog.config import CategoryRecipients
from herald.catalog.recipients import ORDER_GROUP, resolve
from herald.schemas.examples import load_example
from tests.support import event_of


def data_of(document: dict[str, Any]) -> Any:
    return event_of(document).data


@pytest.fixture
def placed() -> dict[str, Any]:
    return load_example("orders.order.placed")  # reseller org-1204 under distributor org-0900


def addresses(roles: tuple[str, ...], document: dict[str, Any], directory: Any = None) -> list[str]:
    return [r.email for r in resolve(roles, data_of(document), directory or {})]


def test_partner_account_manager_is_skipped_for_a_reseller_under_a_distributor(
    placed: dict[str, Any],
) -> None:
    assert addresses(("partner_account_manager",), placed) == []
    assert addresses(ORDER_GROUP, placed) == [
        "jonas@bluepeak.example",
        "sara.holm@operator.example",
    ]


def test_partner_account_manager_is_used_for_a_reseller_without_distributor(
    placed: dict[str, Any],
) -> None:
    del placed["data"]["partner"]["parent_id"]
    del placed["data"]["distributor"]
    assert addresses(("partner_account_manager",), placed) == ["lars@bluepeak.example"]


def test_partner_account_manager_is_used_when_the_partner_is_a_distributor(
    placed: dict[str, Any],
) -> None:
    data = placed["data"]
    data["partner"] = data.pop("distributor")
    data["customer"]["parent_id"] = data["partner"]["id"]
    assert addresses(("partner_account_manager",), placed) == ["lars@bluepeak.example"]
    assert addresses(("distributor_contact",), placed) == ["partners@nordicdist.example"]
    assert addresses(("reseller_contact",), placed) == []


def test_reseller_and_distributor_contacts(placed: dict[str, Any]) -> None:
    assert addresses(("reseller_contact",), placed) == ["orders@bluepeak.example"]
    assert addresses(("distributor_contact",), placed) == ["partners@nordicdist.example"]
    del placed["data"]["partner"]["parent_id"]
    del placed["data"]["distributor"]
    assert addresses(("distributor_contact",), placed) == []


def test_configured_recipients_are_keyed_by_partner_id(placed: dict[str, Any]) -> None:
    directory = {
        "org-1204": {
            "orders": CategoryRecipients(
                emails=["copies@bluepeak.example"], include_partner_contact=True
            )
        },
        "org-0900": {"orders": CategoryRecipients(emails=["distributor-copies@nordic.example"])},
    }
    assert addresses(("config(orders)",), placed, directory) == [
        "copies@bluepeak.example",
        "orders@bluepeak.example",
    ]
    assert addresses(("config(renewals)",), placed, directory) == []


def test_duplicates_are_removed_case_insensitively_first_role_wins(placed: dict[str, Any]) -> None:
    placed["data"]["customer"]["vendor_account_manager"]["email"] = "JONAS@BluePeak.example"
    recipients = resolve(ORDER_GROUP, data_of(placed), {})
    assert [(r.email, r.role) for r in recipients] == [("jonas@bluepeak.example", "order_placer")]


def test_configured_address_uses_english_and_no_name(placed: dict[str, Any]) -> None:
    directory = {"org-1204": {"orders": CategoryRecipients(emails=["copies@bluepeak.example"])}}
    (recipient,) = resolve(("config(orders)",), data_of(placed), directory)
    assert (recipient.locale, recipient.name) == ("en", "")


def test_provisioning_contact_groups_lines_per_contact() -> None:
    submitted = load_example("orders.order.submitted")
    lines = submitted["data"]["order"]["lines"]
    manual = [line for line in lines if line.get("offer", {}).get("provisioning_mode") == "manual"]
    recipients = resolve(("provisioning_contact",), data_of(submitted), {})
    expected: dict[str, list[str]] = {}
    for line in manual:
        expected.setdefault(line["offer"]["provisioning_contact"]["email"].lower(), []).append(
            line["id"]
        )
    assert {r.address_key: list(r.line_ids or ()) for r in recipients} == expected
    assert len(recipients) >= 2


def test_proposal_recipient_falls_back_to_customer_contact() -> None:
    document = load_example("orders.proposal.created+no_recipient")
    expected = document["data"]["customer"]["contact"]["email"]
    assert addresses(("proposal_recipient",), document) == [expected]
    with_recipient = load_example("orders.proposal.created")
    assert addresses(("proposal_recipient",), with_recipient) == [
        with_recipient["data"]["recipient"]["email"]
    ]


def test_order_contacts_empty_list_resolves_to_nobody(placed: dict[str, Any]) -> None:
    assert addresses(("order_contacts",), placed) == []
