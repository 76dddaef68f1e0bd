"""The unsubscribe parts of an optional email (issue 19), parsed back with the standard library:
`List-Unsubscribe` with the https link (and a mailto only when it fits), RFC 8058
`List-Unsubscribe-Post`, the footer line in both parts and the recipient's language; mandatory
mail and mail rendered without the settings carry none of it."""

from __future__ import annotations

from typing import Any

import pytest

from herald.catalog.config import CategoryRecipients
from herald.catalog.optional import UnsubscribeScope
from herald.catalog.plan import Delivery
from herald.renderers.branding import BrandConfig
from herald.renderers.email import EmailRenderer, OutgoingEmail
from herald.renderers.unsubscribe_headers import UnsubscribeLinks, mailto_address
from herald.renderers.unsubscribe_tokens import UnsubscribeTokens
from herald.schemas.examples import load_example
from herald.service.app import unsubscribe_links
from herald.service.settings import Settings
from tests import support

BASE = "https://notify.example.com"
KEYS = "k1:" + "s" * 40
LIST = "renewals@bluepeak.example"
PARTNER = "org-0900"  # Nordic Distribution, in subscriptions.plan.renewal_confirmed
PARTNER_CONTACT = "partners@nordicdist.example"
MANDATORY = "sara.holm@operator.example"  # the vendor account manager
TOKENS = UnsubscribeTokens.from_setting(KEYS)


def linked(bounce_domain: str | None = None, brand: BrandConfig | None = None) -> EmailRenderer:
    links = UnsubscribeLinks(BASE, TOKENS, bounce_domain)
    return EmailRenderer(support.templates(), brand or BrandConfig(), Settings().sender, links)


def renewal_deliveries(**entry: Any) -> tuple[Any, list[Delivery]]:
    document = load_example("subscriptions.plan.renewal_confirmed")
    document["data"]["partner"]["contact"]["locale"] = "de"
    directory = {PARTNER: {"renewals": CategoryRecipients(emails=[LIST], **entry)}}
    event = support.event_of(document)
    planned = support.plan(document, directory)
    return event, [d for d in planned.deliveries if d.spec.id == "plan_will_be_renewed"]


def render(renderer: EmailRenderer, address: str, **entry: Any) -> OutgoingEmail:
    event, deliveries = renewal_deliveries(**entry)
    (delivery,) = [d for d in deliveries if d.recipient.address_key == address]
    return renderer.render(event, delivery)


def token_of(url: str, kind: str) -> str:
    prefix = f"{BASE}/{kind}/"
    assert url.startswith(prefix), url
    return url.removeprefix(prefix)


def test_an_optional_email_carries_one_click_unsubscribe_and_the_footer() -> None:
    message = support.parse(render(linked(), LIST))
    # List-Unsubscribe: one https URI in angle brackets, its token naming this list
    header = str(message["List-Unsubscribe"])
    assert header.startswith("<") and header.endswith(">") and "mailto:" not in header
    subject = TOKENS.verify(token_of(header[1:-1], "unsubscribe"))
    assert (subject.address, subject.scope) == (LIST, UnsubscribeScope("renewals", PARTNER))
    assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    # The footer says why, in both parts, and links the preferences page with a valid token
    text, html = support.text_part(message), support.html_part(message)
    why = "You receive this because you are on the renewal alert list of Nordic Distribution."
    assert why in text
    assert why.replace("'", "&#39;") in html or why in html
    (line,) = [line for line in text.splitlines() if line.startswith("You receive this")]
    preferences = line.rsplit(": ", 1)[1]
    assert TOKENS.verify(token_of(preferences, "preferences")).address == LIST
    assert f'href="{preferences}"' in html


def test_the_header_is_one_unfolded_line_of_ascii_without_cr_or_lf_inside() -> None:
    content = render(linked(), LIST).content
    head = content.split(b"\r\n\r\n", 1)[0].decode("ascii")
    lines = head.split("\r\n")
    (unsubscribe,) = [line for line in lines if line.startswith("List-Unsubscribe:")]
    assert unsubscribe.startswith(f"List-Unsubscribe: <{BASE}/unsubscribe/k1.")
    assert "\n" not in unsubscribe and "\r" not in unsubscribe and len(unsubscribe) < 998
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines


def test_the_footer_speaks_the_recipients_language() -> None:
    # The partner contact (locale de) on the list through include_partner_contact
    message = support.parse(render(linked(), PARTNER_CONTACT, include_partner_contact=True))
    assert message["List-Unsubscribe"] is not None
    text = support.text_part(message)
    assert (
        "Sie erhalten diese Nachricht, weil Sie auf der Liste für Verlängerungshinweise von "
        "Nordic Distribution stehen. Abmelden oder E-Mail-Einstellungen verwalten: "
        f"{BASE}/preferences/k1." in text
    )
    assert "Abmelden oder E-Mail-Einstellungen verwalten</a>" in support.html_part(message)


def test_a_branded_partner_is_named_by_its_brand() -> None:
    brand = BrandConfig.model_validate({"partners": {PARTNER: {"name": "Nordic Cloud"}}})
    text = support.text_part(support.parse(render(linked(brand=brand), LIST)))
    assert "you are on the renewal alert list of Nordic Cloud." in text


def test_mandatory_mail_is_exactly_as_without_the_settings() -> None:
    plain = EmailRenderer(support.templates(), BrandConfig(), Settings().sender)
    event, deliveries = renewal_deliveries()
    (mandatory,) = [d for d in deliveries if d.recipient.address_key == MANDATORY]
    assert mandatory.unsubscribe is None
    with_links, without = linked().render(event, mandatory), plain.render(event, mandatory)
    assert support.golden_parts(with_links) == support.golden_parts(without)
    message = support.parse(with_links)
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None
    assert "You receive this because" not in support.text_part(message)
    assert "/preferences/" not in support.html_part(message)


def test_without_the_settings_an_optional_email_has_no_headers_and_no_footer() -> None:
    plain = EmailRenderer(support.templates(), BrandConfig(), Settings().sender)
    message = support.parse(render(plain, LIST))
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None
    assert "You receive this because" not in support.text_part(message)
    assert "unsubscribe" not in support.html_part(message).lower()


def test_the_mailto_form_is_left_out_when_the_token_is_too_long() -> None:
    message = support.parse(render(linked(bounce_domain="bounces.example.com"), LIST))
    assert "mailto:" not in str(message["List-Unsubscribe"])
    assert mailto_address("k1.short", "bounces.example.com") == (
        "unsubscribe+k1.short@bounces.example.com"
    )
    assert mailto_address("k1.short", None) is None
    assert mailto_address("k1." + "x" * 50, "bounces.example.com") is None


def test_a_short_token_gets_the_mailto_form_after_the_https_one() -> None:
    class ShortTokens(UnsubscribeTokens):
        def issue(self, address: str, scope: UnsubscribeScope) -> str:
            return "k1.short"

    links = UnsubscribeLinks(BASE, ShortTokens.from_setting(KEYS), "bounces.example.com")
    renderer = EmailRenderer(support.templates(), BrandConfig(), Settings().sender, links)
    header = str(support.parse(render(renderer, LIST))["List-Unsubscribe"])
    assert header == (
        f"<{BASE}/unsubscribe/k1.short>, <mailto:unsubscribe+k1.short@bounces.example.com>"
    )


@pytest.mark.parametrize("configured", [True, False])
def test_the_service_builds_links_only_from_both_settings(
    monkeypatch: pytest.MonkeyPatch, configured: bool
) -> None:
    if configured:
        monkeypatch.setenv("HERALD_PUBLIC_BASE_URL", BASE)
        monkeypatch.setenv("HERALD_UNSUBSCRIBE_KEYS", KEYS)
    else:
        monkeypatch.delenv("HERALD_PUBLIC_BASE_URL", raising=False)
        monkeypatch.delenv("HERALD_UNSUBSCRIBE_KEYS", raising=False)
    assert (unsubscribe_links(Settings()) is not None) is configured


def test_every_category_has_a_name_in_both_languages() -> None:
    # Every 3.3 category renders a footer (StrictUndefined would fail on a missing name).
    from herald.catalog.config import CATEGORIES

    for category in CATEGORIES:
        for locale in ("en", "de"):
            event, deliveries = renewal_deliveries()
            (delivery,) = [d for d in deliveries if d.recipient.address_key == LIST]
            recipient = delivery.recipient.__class__(
                email=LIST,
                name="",
                locale=locale,
                role="config(renewals)",
                unsubscribe=UnsubscribeScope(category, PARTNER),
            )
            email = linked().render(
                event, Delivery(spec=delivery.spec, recipient=recipient, key=delivery.key)
            )
            text = support.text_part(support.parse(email))
            assert ("You receive this" in text) == (locale == "en"), (category, locale)
            assert "Nordic Distribution" in text
