"""The words of the user, organization and account emails (issue 20, users group): what the
email lint cannot see. Each test renders an example event as the pipeline's previews do."""

from __future__ import annotations

from herald.schemas.examples import load_example
from herald.tools.preview import preview_directory
from tests import support

DIRECTORY = preview_directory()


def _emails(example: str, notification: str) -> dict[str, tuple[str, str, str]]:
    """Recipient address -> (subject, text part, visible HTML words) of `notification`."""
    found = support.mails(load_example(example), notification, DIRECTORY)
    return {to: (mail.subject, mail.text, mail.words) for to, mail in found.items()}


def test_link_expiry_is_stated_once_with_time_and_zone() -> None:
    for example, notification, sentence in (
        ("users.user.invited", "user_invitation", "This invitation link expires on "),
        ("users.service_account.invited", "service_account_activation", "expires on "),
        ("users.analytics_account.invited", "analytics_account_activation", "expires on "),
        ("users.service_account.recovery_requested", "service_account_recovery", "expires on "),
    ):
        for _, text, words in _emails(example, notification).values():
            for part in (text, words):
                assert part.count(sentence) == 1, (notification, part)
                assert "UTC" in part.split(sentence, 1)[1].split(".")[0], (notification, part)
            assert "Link expires on" not in words


def test_the_reader_is_not_listed_by_name_in_an_email_about_their_own_account() -> None:
    _, text, words = _emails("users.portal_account.created", "portal_account_activation")[
        "nina.petrov@harborit.example"
    ]
    assert "Name:" not in text
    assert "Name Nina Petrov" not in words


def test_a_tenant_requested_by_the_reader_says_you() -> None:
    emails = _emails("users.tenant.created+requested_by_partner", "tenant_created")
    _, text, words = emails["orders@bluepeak.example"]
    assert "created for Northwind Health at your request." in text
    assert "Requested by: You" in text
    assert "at your request" in words
    _, other, _ = emails["partners@nordicdist.example"]
    assert "at the request of BluePeak Orders." in other


def test_a_domain_created_by_the_reader_says_you_and_the_subject_names_the_customer() -> None:
    emails = _emails("users.domain.created+by_partner_contact", "calling_domain_created")
    subject, text, words = emails["orders@bluepeak.example"]
    assert subject == "New calling domain video.fabrikamlegal.example for Fabrikam Legal"
    assert (
        "You created a new calling domain, video.fabrikamlegal.example, for Fabrikam Legal." in text
    )
    assert "Created by: You" in text
    assert "You created a new calling domain" in words


def test_the_organization_contact_reads_about_their_own_organization() -> None:
    emails = _emails("users.organization.status_changed", "organization_status_changed")
    _, own, _ = emails["it@northwind.example"]
    assert "The status of your organization, Northwind Health, changed from" in own
    assert "If you have questions about this change, contact BluePeak AV." in own
    _, parent, _ = emails["orders@bluepeak.example"]
    assert "The status of Northwind Health changed from" in parent
    by_parent = _emails(
        "users.organization.status_changed+by_parent_contact", "organization_status_changed"
    )
    _, actor, _ = by_parent["orders@bluepeak.example"]
    assert "You changed the status of Northwind Health from Pending approval to Active." in actor


def test_a_2fa_reset_without_a_link_ends_with_the_products_sign_in_page() -> None:
    emails = _emails("users.portal_account.two_factor_reset+analytics", "portal_account_2fa_reset")
    subject, text, _ = emails["ingrid.solberg@fjordlogistics.example"]
    assert subject == "Reset your Cloud Portal account 2FA (Analytics)"
    body = text.split("\n--\n", 1)[0].rstrip()
    assert body.endswith(
        "Sign in to Analytics to set up 2FA again: https://analytics.cloudportal.example/sign-in"
    )


def test_the_onboarding_invitation_names_the_organization_and_avoids_jargon() -> None:
    subject, text, words = next(
        iter(_emails("users.organization.invited", "distributor_onboarding_invitation").values())
    )
    assert subject == "You were invited by Nordic Distribution to register Arctic AV Integration"
    assert "on-board" not in text and "on-board" not in words


def test_the_approval_request_says_what_the_organization_asks_to_become() -> None:
    _, text, _ = next(
        iter(
            _emails(
                "users.organization.approval_requested", "organization_approval_pending"
            ).values()
        )
    )
    assert "asked to become an end customer of Harbor IT Solutions." in text
    assert "attached to" not in text
