"""The words of the interop and catalog emails (issue 20) where the email lint cannot see them:
"you" for the customer, the partner told the email is about its customer, the partner copy of the
Google Meet token request, the customer named in the subject, and the catalog changes' prices."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from herald.schemas.examples import load_example
from herald.tools.preview import preview_directory
from tests import support
from tests.email_lint import Rendered, problems


def _emails(document: dict[str, Any], notification: str) -> dict[str, tuple[str, str]]:
    """Recipient address -> (subject, text part) of every `notification` email of `document`."""
    found = support.mails(document, notification, preview_directory())
    return {to: (mail.subject, mail.text) for to, mail in found.items()}


def _body(text: str) -> str:
    return " ".join(text.split("\n--\n", 1)[0].split())


CUSTOMER = "it@northwind.example"
PARTNER = "orders@bluepeak.example"


@pytest.mark.parametrize(
    ("example", "notification"),
    [
        ("interop.teams.usage_reported", "teams_cvi_usage_threshold"),
        ("interop.teams.usage_reported+oversubscribed", "teams_cvi_oversubscription"),
    ],
)
def test_usage_alerts_say_you_to_the_customer_and_your_customer_to_the_partner(
    example: str, notification: str
) -> None:
    emails = _emails(load_example(example), notification)
    customer, partner = _body(emails[CUSTOMER][1]), _body(emails[PARTNER][1])
    assert "on your Cloud Portal Cloud Video Interop for Microsoft Teams service" in customer
    assert "your 20 concurrent call licenses" in customer
    assert "contact your partner, BluePeak AV" in customer
    assert "service of your customer Northwind Health" in partner
    assert "its 20 concurrent call licenses" in partner
    # The partner is BluePeak AV: it is not told to contact itself.
    assert "contact your partner" not in partner


def test_oversubscription_says_how_many_licenses_are_missing() -> None:
    emails = _emails(
        load_example("interop.teams.usage_reported+oversubscribed"), "teams_cvi_oversubscription"
    )
    customer = _body(emails[CUSTOMER][1])
    assert "up to 23 calls ran at the same time" in customer
    assert "3 more than your 20 concurrent call licenses cover" in customer
    assert "add at least 3 concurrent call licenses" in customer


def test_a_full_usage_report_reads_right_and_passes_the_lint() -> None:
    document = copy.deepcopy(load_example("interop.teams.usage_reported"))
    document["data"]["peak_concurrent_calls"] = 20
    rendered_count = 0
    for email in support.render_every_kind(document, preview_directory()):
        if email.notification != "teams_cvi_usage_threshold":
            continue
        message = support.parse(email)
        text = support.text_part(message)
        rendered = Rendered(
            notification=email.notification,
            locale="en",
            example="full",
            recipient_name=message["To"].addresses[0].display_name,
            subject=email.subject,
            text=text,
            html=support.html_part(message),
        )
        assert problems(rendered) == []
        assert email.subject.startswith("100% usage notification for ")
        if message["To"].addresses[0].addr_spec == CUSTOMER:
            assert "100% of your 20 concurrent call licenses" in _body(text)
        rendered_count += 1
    assert rendered_count == 2


def test_the_partner_copy_of_the_token_request_says_whom_it_was_asked_of() -> None:
    emails = _emails(
        load_example("interop.google_meet.subscription_created"), "google_meet_token_upload_request"
    )
    customer = _body(emails["ingrid.solberg@fjordlogistics.example"][1])
    (copy_address,) = set(emails) - {"ingrid.solberg@fjordlogistics.example"}
    partner = _body(emails[copy_address][1])
    assert "please upload your Google Meet authentication token" in customer
    assert "for your organization, Fjord Logistics AS" in customer
    assert "please upload your" not in partner
    assert "for your customer Fjord Logistics AS" in partner
    assert "We have asked Ingrid Solberg of Fjord Logistics AS to upload" in partner


@pytest.mark.parametrize(
    ("example", "notification", "start"),
    [
        (
            "interop.google_meet.subscription_created",
            "google_meet_token_upload_request",
            "Please upload your Authentication Token for Gateway Interoperability",
        ),
        (
            "interop.google_meet.subscription_activated",
            "google_meet_provisioned",
            "Your Google Meet Interoperability service has been provisioned",
        ),
        (
            "interop.teams.subscription_created",
            "teams_cvi_authorization_request",
            "Please authorize Cloud Portal CVI application",
        ),
        (
            "interop.teams.subscription_activated",
            "teams_cvi_provisioned",
            "Your CVI Service for MS Teams has been provisioned",
        ),
        (
            "interop.teams_rooms.subscription_created",
            "teams_rooms_authorization_request",
            "Please authorize Cloud Portal Connect for Teams Rooms",
        ),
        (
            "interop.teams.usage_reported",
            "teams_cvi_usage_threshold",
            "85% usage notification for Cloud Portal Cloud Video Interop for Microsoft Teams",
        ),
    ],
)
def test_interop_subjects_keep_the_contract_words_and_name_the_customer(
    example: str, notification: str, start: str
) -> None:
    document = load_example(example)
    name = document["data"]["customer"]["name"]
    for subject, _ in _emails(document, notification).values():
        assert subject == f"{start}: {name}"
    # A customer name that does not fit whole is left out rather than cut; the contract's words
    # stay.
    document = copy.deepcopy(document)
    document["data"]["customer"]["name"] = "The Very Long Name of a Customer Organization " * 2
    for subject, _ in _emails(document, notification).values():
        assert subject == start


def test_catalog_changes_name_the_change_and_say_which_price_is_new() -> None:
    (email,) = _emails(load_example("catalog.catalog.changed"), "catalog_changed").values()
    subject, text = email
    assert subject == "Catalog changes: 3 offers changed in Harbor IT Cloud Catalog"
    lines = [line.strip() for line in text.splitlines()]
    assert "- Price changed: Microsoft 365 Business Premium (annual), vendor: Microsoft" in lines
    assert "New price: 277.20 EUR (previously 264.00 EUR)" in lines
    assert "- Retired: Microsoft 365 Business Standard (annual), vendor: Microsoft" in lines
    assert "Takes effect on: 1 October 2025" in lines


def test_one_catalog_change_is_one_offer() -> None:
    document = copy.deepcopy(load_example("catalog.catalog.changed"))
    document["data"]["changes"] = document["data"]["changes"][:1]
    (email,) = _emails(document, "catalog_changed").values()
    assert email[0] == "Catalog changes: 1 offer changed in Harbor IT Cloud Catalog"
    assert "1 offer changed in the catalog of Harbor IT Solutions" in _body(email[1])


def test_offer_availability_says_you_and_counts_the_offers() -> None:
    emails = _emails(
        load_example("catalog.offer_availability.changed"), "offer_availability_changed"
    )
    subject, text = emails[PARTNER]
    assert subject == "New offers now available to you: 2 offers from Nordic Distribution"
    assert (
        "Nordic Distribution has made 2 new offers available to your organization, BluePeak AV."
        in _body(text)
    )
