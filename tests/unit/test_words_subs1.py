"""The words of the subscription and trial emails (issue 20) where the email lint cannot see
them: who is "you", what a list copy is about, change fields and values in words, what to do
after an error, and "1 day"."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from herald.catalog.plan import Delivery, instance_key
from herald.catalog.recipients import Recipient, resolve
from herald.schemas.examples import load_example
from herald.tools.preview import extras, preview_directory
from tests import support


@dataclass(frozen=True, slots=True)
class Email:
    recipient: Recipient
    subject: str
    text: str
    html: str


def render(
    notification: str,
    example: str,
    days: int | None = None,
    change: Callable[[dict[str, Any]], None] | None = None,
) -> list[Email]:
    """`notification` rendered from `example` for every recipient (configured lists included),
    with the reminder's `days` when given."""
    document = copy.deepcopy(load_example(example))
    if change is not None:
        change(document["data"])
    event = support.event_of(document)
    spec = support.catalog()[notification]
    context = extras(spec, event) | ({} if days is None else {"days": days})
    renderer = support.renderer()
    found = []
    for recipient in resolve(spec.recipients, event.data, preview_directory()):
        key = instance_key(spec.id, event.source, event.id, recipient.address_key)
        email = renderer.render(event, Delivery(spec=spec, recipient=recipient, key=key), context)
        message = support.parse(email)
        found.append(
            Email(
                recipient,
                email.subject,
                support.text_part(message).replace("\r\n", "\n"),
                support.html_part(message).replace("\r\n", "\n"),
            )
        )
    assert found, f"{example} renders no {notification}"
    return found


def to(emails: list[Email], address: str) -> Email:
    (email,) = [e for e in emails if e.recipient.email == address]
    return email


def list_copy(emails: list[Email]) -> Email:
    (email,) = [e for e in emails if e.recipient.role.startswith("config(")]
    return email


def test_a_subscription_change_says_you_to_whoever_made_it() -> None:
    emails = render("subscription_changed", "subscriptions.subscription.changed")
    actor = to(emails, "karin.lund@nordicdist.example")
    assert "You successfully changed subscription Fjord Logistics" in actor.text
    assert "Changed by: You" in actor.text
    assert "You successfully changed" in actor.html
    customer = to(emails, "ingrid.solberg@fjordlogistics.example")
    assert "Karin Lund successfully changed subscription Fjord Logistics" in customer.text
    assert "Changed by: Karin Lund" in customer.text


def test_changed_fields_and_billing_periods_are_in_words() -> None:
    (email, *_) = render("subscription_changed", "subscriptions.subscription.changed")
    assert "- Automatic renewal: from On to Off" in email.text
    assert "Auto renew" not in email.text + email.html
    (email, *_) = render("subscription_changed", "subscriptions.subscription.changed+without_actor")
    assert "- Billing period: from Monthly to Annual" in email.text
    assert ">Monthly<" in email.html and ">Annual<" in email.html


def test_error_emails_say_what_went_wrong_and_what_to_do() -> None:
    failed = render("subscription_change_error", "subscriptions.subscription.change_failed")
    actor = to(failed, "jonas@bluepeak.example")
    assert "The change you requested to subscription" in actor.text
    assert (
        "What went wrong: Quantity below the committed minimum "
        "(code: quantity_below_commitment)" in actor.text
    )
    assert "What to do: Choose a quantity at or above the committed minimum" in actor.text
    (renewal, *_) = render(
        "subscription_renewal_error", "subscriptions.subscription.renewal_failed"
    )
    assert "What went wrong: Payment declined (code: payment_declined)" in renewal.text
    assert "What to do: Update the payment method on file" in renewal.text
    assert "What to do" in renewal.html


def test_one_day_is_singular_in_subjects() -> None:
    (expiry, *_) = render(
        "subscription_expiry_reminder", "subscriptions.subscription.changed", days=1
    )
    assert expiry.subject.endswith(" expires in 1 day")
    trials = render("offer_trial_expiry", "subscriptions.trial.started+offer", days=1)
    assert all(email.subject.endswith(" expires in 1 day") for email in trials)


def test_an_offer_trial_is_your_trial_only_to_the_customer() -> None:
    emails = render("offer_trial_expiry", "subscriptions.trial.started+offer")
    customer = to(emails, "rachel.moore@lakesideclinics.example")
    assert customer.subject == "Your trial of Secure Email Gateway expires in 7 days"
    assert "Redwood Networks can also place the order for you." in customer.text
    partner = to(emails, "orders@redwoodnet.example")
    assert partner.subject == (
        "Trial of Secure Email Gateway for Lakeside Family Clinics expires in 7 days"
    )
    assert "for your customer Lakeside Family Clinics" in partner.text
    assert "Your trial" not in partner.text + partner.html
    body = partner.text.split("\n--\n")[0]
    assert "Redwood Networks" not in body.split("\n", 1)[1]  # after the salutation


def test_a_list_copy_of_an_end_user_trial_says_whose_trial_it_is() -> None:
    for notification, example in (
        ("trial_reminder_end_user", "subscriptions.trial.started+end_user"),
        ("trial_extended_end_user", "subscriptions.trial.extended+end_user"),
    ):
        emails = render(notification, example)
        user = to(emails, "oskar.lind@northwind.example")
        assert "Your trial of Personal meeting room" in user.text
        copy_ = list_copy(emails)
        assert "Oskar Lind's trial of Personal meeting room" in copy_.subject
        assert "Your trial" not in copy_.text + copy_.html, notification
        assert "of Personal meeting room for Oskar Lind at Northwind Health" in copy_.text
        assert "User: Oskar Lind" in copy_.text


def test_company_trial_emails_tell_the_customer_from_the_partner() -> None:
    emails = render("trial_reminder_company", "subscriptions.trial.started")
    assert "The trial of your company, Skagen Architects, ends in" in (
        to(emails, "office@skagenarch.example").text
    )
    partner = list_copy(emails)
    assert "The trial of your customer Skagen Architects ends in" in partner.text
    assert "order a license plan for the company in the partner portal before" in partner.text
    ended = render("trial_ended_company", "subscriptions.trial.ended")
    for email in ended:
        assert "Why it ended: The trial period ran out" in email.text
    assert "a license plan for Polar Event Studios must be ordered" in (
        to(ended, "hello@polarevents.example").text
    )
