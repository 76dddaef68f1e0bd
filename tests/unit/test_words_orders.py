"""The words of the orders emails (issue 20) that the email lint cannot see: credits read as
credits, the status code is shown labelled beside its name, an error says what to do, the reader
who placed or canceled an order is "you" while the others still read the name, and the subjects
name the order."""

from __future__ import annotations

from herald.schemas.examples import load_example
from herald.tools.preview import preview_directory, with_locale
from tests import support

DIRECTORY = preview_directory()


def mails(example: str, notification: str, locale: str = "en") -> dict[str, support.Mail]:
    """Recipient address -> the rendered email of `notification` from `example`."""
    document = load_example(example)
    if locale != "en":
        document = with_locale(document, locale)
    return support.mails(document, notification, DIRECTORY)


def test_a_negative_line_price_reads_as_a_credit() -> None:
    email = mails("orders.order.placed+quantity_change", "change_confirmation")[
        "jonas@bluepeak.example"
    ]
    assert "Credit: 37.50 EUR" in email.text
    assert "Credit: 37.50 EUR" in email.words
    assert "-37.50" not in email.text + email.words


def test_a_negative_line_price_reads_as_a_credit_in_german() -> None:
    email = mails("orders.order.placed+quantity_change", "change_confirmation", "de")[
        "jonas@bluepeak.example"
    ]
    assert "Gutschrift: 37,50 EUR" in email.text
    assert "Gutschrift: 37,50 EUR" in email.words
    assert "-37,50" not in email.text + email.words


def test_other_items_show_their_change_in_words_and_credits() -> None:
    english = mails("orders.order.placed+new_and_changed_lines", "order_confirmation_new")
    text = english["sara.holm@operator.example"].text
    assert (
        "- Personal meeting licenses (quantity change), quantity 50 -> 45, credit 37.50 EUR" in text
    )
    german = mails("orders.order.placed+new_and_changed_lines", "order_confirmation_new", "de")
    text = german["sara.holm@operator.example"].text
    assert (
        "- Personal meeting licenses (Mengenänderung), Menge 50 -> 45, Gutschrift 37,50 EUR" in text
    )


def test_the_placer_reads_you_and_the_others_read_the_placers_name() -> None:
    emails = mails("orders.order.placed", "order_confirmation_new")
    assert "You placed order PO-2025-004817" in emails["jonas@bluepeak.example"].text
    assert "Placed by" not in emails["jonas@bluepeak.example"].words
    assert "Jonas Berg placed order PO-2025-004817" in emails["sara.holm@operator.example"].text
    german = mails("orders.order.placed", "order_confirmation_new", "de")
    assert "Sie haben am 2. Juni 2025 die Bestellung" in german["jonas@bluepeak.example"].text
    assert "Jonas Berg hat am 2. Juni 2025" in german["sara.holm@operator.example"].text


def test_the_reader_who_canceled_reads_by_you() -> None:
    emails = mails("orders.order.canceled", "cancellation_confirmation")
    assert "by you." in emails["tom.becker@harborit.example"].text
    assert "which you placed on 14 June 2025" in emails["alex.moreno@harborit.example"].text
    assert "by Tom Becker." in emails["alex.moreno@harborit.example"].text


def test_the_status_code_is_labelled_beside_the_status_name() -> None:
    email = mails("orders.order.status_changed", "order_status_changed")["jonas@bluepeak.example"]
    assert "New status: Completed (code: completed)" in email.text
    assert "Completed (code: completed)" in email.words
    assert "Status code" not in email.text + email.words


def test_the_provisioning_error_says_what_to_do() -> None:
    email = mails("orders.order.provisioning_failed", "offer_provisioning_error")[
        "alex.moreno@harborit.example"
    ]
    assert (
        "What went wrong: Consent to the customer's tenant is missing "
        "(code: tenant_consent_missing)" in email.text
    )
    assert "What to do: Ask the customer's administrator to grant the consent" in email.text
    assert (
        "Consent to the customer's tenant is missing (code: tenant_consent_missing)" in email.words
    )
    assert "What to do: Ask the customer's administrator to grant the consent" in email.words


def test_subjects_name_the_order_and_the_customer() -> None:
    for example, notification, subject in (
        (
            "orders.order.placed",
            "order_confirmation_new",
            "Order confirmation from Cloud Portal (new): PO-2025-004817 for Northwind Health",
        ),
        (
            "orders.order.canceled",
            "cancellation_confirmation",
            "Cancellation confirmation from Cloud Portal: order PO-2025-005240 "
            "for Contoso Dental Group",
        ),
        (
            "orders.proposal.created",
            "new_proposal",
            "New proposal from BluePeak AV: PRP-2025-00318",
        ),
    ):
        assert {email.subject for email in mails(example, notification).values()} == {subject}
