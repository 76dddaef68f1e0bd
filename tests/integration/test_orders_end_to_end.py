"""Every orders notification type through the real broker, ledger and SMTP server: subject,
recipients (one message each, only their own address) and key body fields of NOTIFICATIONS.md
2.1. Expectations are written out from the contract, not computed by Herald's own code."""

from __future__ import annotations

from typing import Any

import pytest
from markupsafe import escape as html_escape

from herald.schemas.examples import load_example
from herald.service.app import Service
from tests.conftest import SmtpServer
from tests.integration.conftest import Broker, wait_for_metric

pytestmark = pytest.mark.integration

BRAND = "Cloud Portal"  # brand.default: no config file in these tests


def value_at(document: dict[str, Any], path: str) -> str:
    node: Any = document["data"]
    for part in path.split("."):
        node = node[int(part)] if part.isdigit() else node[part]
    return str(node)


# example -> [(notification, subject template, recipients, data paths shown in the body)]
EXPECTED: dict[str, list[tuple[str, str, set[str], list[str]]]] = {
    "orders.order.placed": [
        (
            "order_confirmation_new",
            f"Order confirmation from {BRAND} (new): {{order.id}} for {{customer.name}}",
            # reseller under a distributor: no partner account manager (3.1)
            {"jonas@bluepeak.example", "sara.holm@operator.example"},
            ["customer.name", "order.id", "order.placed_by.name", "order.lines.0.product_name"],
        )
    ],
    "orders.order.placed+marketplace": [
        (
            "order_placed",
            "Order {order.id} received: {customer.name}",
            {
                "devon.price@redwoodnet.example",
                "rachel.moore@lakesideclinics.example",
                "orders@redwoodnet.example",
            },
            [
                "order.id",
                "order.status.name",
                "customer.name",
                "partner.name",
                "order.lines.0.offer.name",
                "order.lines.1.offer.name",
            ],
        )
    ],
    "orders.order.placed+billing_period_change": [
        (
            "order_confirmation_change",
            f"Order confirmation from {BRAND} (change): {{order.id}} for {{customer.name}}",
            # the partner is a distributor: its account manager is included
            {
                "karin.lund@nordicdist.example",
                "emil.nyberg@nordicdist.example",
                "daniel.ek@operator.example",
            },
            ["customer.name", "order.id", "order.placed_by.name", "order.lines.0.product_name"],
        )
    ],
    "orders.order.placed+quantity_change": [
        (
            "change_confirmation",
            f"Change confirmation from {BRAND}: order {{order.id}} for {{customer.name}}",
            {"jonas@bluepeak.example", "sara.holm@operator.example"},
            [
                "customer.name",
                "order.id",
                "order.lines.0.product_name",
                "order.lines.0.previous_quantity",
                "order.lines.0.quantity",
            ],
        )
    ],
    "orders.order.placed+branding": [
        (
            "branding_instructions",
            f"Instructions for providing {BRAND} with the information required to fulfill the order",
            {"priya.raman@contosodental.example", "marco.silva@contosodental.example"},
            ["customer.name", "order.id", "order.lines.0.product_name"],
        )
    ],
    "orders.order.submitted": [
        (
            "purchase_notification",
            "Order {order.id} submitted for provisioning: {customer.name}",
            {"jonas@bluepeak.example", "orders@bluepeak.example", "partners@nordicdist.example"},
            [
                "order.id",
                "order.status.name",
                "customer.name",
                "partner.name",
                "order.lines.0.offer.name",
            ],
        ),
        (
            "provisioning_details",
            "New order {order.id} to provision for {customer.name}",
            {"provisioning@securanet.example", "fieldservice@bluepeak.example"},
            [
                "order.id",
                "customer.name",
                "customer.contact.name",
                "customer.contact.email",
                "partner.name",
            ],
        ),
    ],
    "orders.order.provisioned": [
        (
            "offer_provision_success",
            "Offer provisioning successful: order {order.id} for {customer.name}",
            # the partner is a distributor, so there is no reseller contact
            {"karin.lund@nordicdist.example", "ingrid.solberg@fjordlogistics.example"},
            [
                "order.id",
                "customer.name",
                "order.lines.0.offer.name",
                "subscriptions.0.name",
                "subscriptions.0.id",
            ],
        )
    ],
    "orders.order.provisioning_failed": [
        (
            "offer_provisioning_error",
            "Error during provisioning of order {order.id} for {customer.name}",
            {"alex.moreno@harborit.example", "sales@harborit.example"},
            ["order.id", "customer.name", "partner.name", "error.code", "error.message"],
        )
    ],
    "orders.order.status_changed": [
        (
            "order_status_changed",
            "Order {order.id} status changed to {order.status.name}",
            {"jonas@bluepeak.example", "orders@bluepeak.example", "partners@nordicdist.example"},
            [
                "order.id",
                "order.status.id",
                "order.status.name",
                "partner.name",
                "previous_status.name",
            ],
        )
    ],
    "orders.order.canceled": [
        (
            "cancellation_confirmation",
            f"Cancellation confirmation from {BRAND}: order {{order.id}} for {{customer.name}}",
            {
                "alex.moreno@harborit.example",
                "tom.becker@harborit.example",
                "sara.holm@operator.example",
            },
            ["customer.name", "order.id", "order.lines.0.product_name", "actor.name"],
        )
    ],
    "orders.order.activated": [
        (
            "branding_active",
            f"In-conference branding is now active on the {BRAND} Service: {{customer.name}}",
            {"it@northwind.example", "oskar.lindqvist@northwind.example"},
            ["customer.name", "order.id", "order.lines.0.product_name"],
        )
    ],
    "orders.proposal.created": [
        (
            "new_proposal",
            "New proposal from {partner.name}: {proposal.id}",
            {"oskar.lindqvist@northwind.example"},
            ["proposal.id", "partner.name", "actor.name", "proposal.lines.0.product_name"],
        )
    ],
    "orders.proposal.created+no_recipient": [
        (
            "new_proposal",
            "New proposal from {partner.name}: {proposal.id}",
            {"ingrid.solberg@fjordlogistics.example"},
            ["proposal.id", "partner.name", "actor.name"],
        )
    ],
    "orders.quote.created": [
        (
            "new_quote",
            "New quote “{quote.name}”",
            {"it@northwind.example"},
            ["quote.name", "quote.id", "partner.name", "quote.author.name"],
        )
    ],
    "orders.quote.change_requested": [
        (
            "quote_change_requested",
            "Change requested for quote “{quote.name}”",
            {"alex.moreno@harborit.example", "sales@harborit.example"},
            ["quote.name", "quote.id", "customer.name", "actor.name", "comment"],
        )
    ],
    "orders.quote.accepted": [
        (
            "quote_accepted",
            "Quote “{quote.name}” accepted",
            {"karin.lund@nordicdist.example", "partners@nordicdist.example"},
            ["quote.name", "quote.id", "customer.name", "actor.name", "order_id"],
        )
    ],
    "orders.quote.rejected": [
        (
            "quote_rejected",
            "Quote “{quote.name}” rejected by {customer.name}",
            {"jonas@bluepeak.example", "orders@bluepeak.example"},
            ["quote.name", "quote.id", "customer.name", "actor.name", "reason"],
        )
    ],
    "orders.quote.canceled": [
        (
            "quote_canceled",
            "Quote “{quote.name}” canceled",
            {"rachel.moore@lakesideclinics.example"},
            ["quote.name", "quote.id", "partner.name", "reason"],
        )
    ],
}


def test_every_orders_notification_is_covered() -> None:
    covered = {row[0] for rows in EXPECTED.values() for row in rows}
    assert len(covered) == 18


def subject_of(template: str, document: dict[str, Any]) -> str:
    import re

    return re.sub(r"\{([a-z_.0-9]+)\}", lambda m: value_at(document, m.group(1)), template)


@pytest.mark.parametrize("example", sorted(EXPECTED))
async def test_orders_event_becomes_the_right_emails(
    example: str, service: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    document = load_example(example)
    expected = EXPECTED[example]
    total = sum(len(recipients) for _, _, recipients, _ in expected)
    await broker.publish(document)
    received = await smtp_server.wait_for(total)
    await wait_for_metric(service, "herald_events_processed_total", 1, domain="orders")

    by_notification: dict[str, list[Any]] = {}
    for item in received:
        assert len(item.recipients) == 1, "one message per recipient"
        message = item.message
        assert message["To"].addresses[0].addr_spec == item.recipients[0]
        assert message["Cc"] is None and message["Bcc"] is None
        assert item.envelope_from == "notifications@operator.example"
        by_notification.setdefault(message["X-Herald-Notification"], []).append(item)

    assert set(by_notification) == {row[0] for row in expected}
    for notification, subject, recipients, body_paths in expected:
        items = by_notification[notification]
        assert {item.recipients[0] for item in items} == recipients
        for item in items:
            message = item.message
            assert message["Subject"] == subject_of(subject, document)
            text = message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
            html = message.get_body(preferencelist=("html",)).get_content().replace("\r\n", "\n")
            for path in body_paths:
                shown = value_at(document, path)
                assert shown in text, f"{notification}: text part lacks {path}"
                assert str(html_escape(shown)) in html, f"{notification}: HTML part lacks {path}"
    # No more emails than expected arrive.
    assert len(smtp_server.received) == total


async def test_provisioning_details_lists_only_each_contacts_lines(
    service: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    document = load_example("orders.order.submitted")
    await broker.publish(document)
    await smtp_server.wait_for(5)
    lines = document["data"]["order"]["lines"]
    by_contact = {
        item.recipients[0]: item.message.get_body(preferencelist=("plain",)).get_content()
        for item in smtp_server.received
        if item.message["X-Herald-Notification"] == "provisioning_details"
    }
    for address, text in by_contact.items():
        assert "Please see the details of the new order below" in text
        for line in lines:
            offer = line["offer"]
            mine = (
                offer.get("provisioning_mode") == "manual"
                and offer["provisioning_contact"]["email"] == address
            )
            assert (offer["id"] in text) == mine, f"{address}: line {line['id']}"


async def test_names_cannot_inject_headers_end_to_end(
    service: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    document = load_example("orders.order.placed")
    document["id"] = "injection-1"
    document["data"]["order"]["placed_by"]["name"] = "=?UTF-8?Q?=0A?=Bcc: evil@attacker.example"
    document["data"]["customer"]["name"] = "Northwind\r\nBcc: evil@attacker.example"
    await broker.publish(document)
    received = await smtp_server.wait_for(2)
    await wait_for_metric(service, "herald_events_processed_total", 1, domain="orders")
    for item in received:
        assert item.recipients != ["evil@attacker.example"]
        assert b"\nBcc:" not in item.content.split(b"\r\n\r\n", 1)[0]
        assert item.message["Bcc"] is None
        assert "\n" not in item.message["Subject"]
    assert len(received) == 2


async def test_html_escaping_end_to_end(
    service: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    document = load_example("orders.quote.change_requested")
    document["data"]["comment"] = '<img src=x onerror="alert(1)"> please & thanks'
    await broker.publish(document)
    received = await smtp_server.wait_for(2)
    for item in received:
        html = item.message.get_body(preferencelist=("html",)).get_content()
        assert "<img" not in html
        # Escaped by jinja2; css-inline's HTML serializer then writes text-node quotes plainly.
        assert '&lt;img src=x onerror="alert(1)"&gt; please &amp; thanks' in html
        text = item.message.get_body(preferencelist=("plain",)).get_content()
        assert '<img src=x onerror="alert(1)"> please & thanks' in text


async def test_ledger_records_each_delivery_with_its_message_id(
    service: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    document = load_example("orders.quote.accepted")
    await broker.publish(document)
    received = await smtp_server.wait_for(2)
    await wait_for_metric(service, "herald_events_processed_total", 1, domain="orders")
    records = await service.ledger.deliveries_of_event(document["source"], document["id"])
    assert sorted(r.status for r in records) == ["sent", "sent"]
    assert {r.message_id for r in records} == {item.message["Message-ID"] for item in received}
