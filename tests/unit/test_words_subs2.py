"""Issue 20, group subs2: the words the email lint cannot check in the plan, OTJ, team room,
video system, classic subscription and invitation code emails (which date is which, the "you"
branches, and the next step each reader is given)."""

from __future__ import annotations

import copy
from typing import Any

from herald.schemas.examples import load_example
from herald.tools.preview import preview_directory, with_locale
from tests import support

DIRECTORY = preview_directory()
PORTAL = "https://partners.cloudportal.example/sign-in"
SERVICE = "https://service.cloudportal.example/sign-in"


def texts(document: dict[str, Any], notification: str) -> dict[str, str]:
    """Recipient address -> text part (signature cut off) of `notification`."""
    found = support.mails(document, notification, DIRECTORY)
    return {to: mail.text.split("\n--\n", 1)[0] for to, mail in found.items()}


def test_otj_renewal_says_the_date_is_the_renewal_date_not_the_confirmation_date() -> None:
    document = load_example("subscriptions.plan.renewal_confirmed")
    (rendered,) = texts(document, "otj_license_renewal").values()
    assert "confirmed for renewal on" not in rendered
    assert "has been confirmed" in rendered
    assert "renews with it on 1 October 2026, the day the plan's current term ends" in rendered


def test_plan_will_be_renewed_says_you_to_the_confirming_reader_and_needs_no_action() -> None:
    document = load_example("subscriptions.plan.renewal_confirmed")
    by_reader = texts(document, "plan_will_be_renewed")
    actor = document["data"]["actor"]["email"]
    mine = by_reader.pop(actor)
    assert "You confirmed that the license plan" in mine
    assert "Confirmed by: You" in mine
    assert "It renews on 1 October 2026, the day its current term ends." in mine
    assert "No action is needed from you." in mine
    for other in by_reader.values():
        assert "Kim Larsen confirmed that the license plan" in other
    german = texts(with_locale(document, "de"), "plan_will_be_renewed")[actor]
    assert "Sie haben bestätigt" in german
    assert "Bestätigt von: Ihnen" in german


def test_plan_renewed_names_both_terms_and_needs_no_action() -> None:
    rendered = texts(load_example("subscriptions.plan.renewed"), "plan_renewed")
    for text in rendered.values():
        assert (
            "Its previous term ended on 1 October 2025; the new term runs until 1 October 2026."
            in text
        )
        assert "No action is needed from you." in text


def test_plan_expired_tells_how_to_keep_the_licenses() -> None:
    for text in texts(load_example("subscriptions.plan.expired"), "plan_expired").values():
        assert "Reason: Expiry confirmed in the partner portal" in text
        assert f"order a new license plan in the partner portal: {PORTAL}" in text


def test_team_room_trial_end_gives_the_customer_and_the_partner_their_own_next_step() -> None:
    document = load_example("subscriptions.team_room.deactivated+trial_ended")
    rendered = texts(document, "team_room_deactivated")
    customer = rendered.pop(document["data"]["customer"]["contact"]["email"])
    assert "ask BluePeak AV for a paid subscription" in customer
    assert SERVICE in customer and PORTAL not in customer
    assert rendered
    for partner in rendered.values():
        assert (
            f"To offer Polar Event Studios a paid subscription, sign in to the partner portal: {PORTAL}"
            in partner
        )


def test_team_room_activated_says_you_when_the_customer_contact_activated_it() -> None:
    document = copy.deepcopy(load_example("subscriptions.team_room.activated"))
    contact = document["data"]["customer"]["contact"]
    document["data"]["actor"] = dict(contact)
    text = texts(document, "team_room_activated")[contact["email"]]
    assert "You activated the team room Northwind Radiology Team of Northwind Health." in text
    assert "Activated by: You" in text


def test_video_system_disabled_by_the_reader_says_you() -> None:
    document = copy.deepcopy(load_example("subscriptions.endpoint.deactivated"))
    contact = document["data"]["customer"]["contact"]
    document["data"]["actor"] = dict(contact)
    text = texts(document, "endpoint_disabled")[contact["email"]]
    assert "You disabled the video system subscription of" in text
    assert "Disabled by: You" in text
