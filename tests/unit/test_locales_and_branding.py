"""Rendering per locale and per branding: golden files for every shipped German template and for
branded partners, and the rules behind them (fallback chain, Babel formats, From/Reply-To, the
brand's colours and logo, provenance).

Regenerate after an intended change with
`HERALD_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_locales_and_branding.py`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parseaddr
from types import SimpleNamespace

import pytest

from herald.renderers.branding import BrandConfig
from herald.renderers.email import OutgoingEmail
from herald.renderers.environment import Templates
from herald.renderers.formatting import format_date, format_datetime, format_money, format_number
from herald.renderers.locales import canonical, fallback_chain
from herald.renderers.styles import readable_on
from herald.tools.preview import (
    PREVIEW_COPIES,
    event_from,
    example_for,
    preview_directory,
    render_preview,
    with_locale,
    with_partner,
)
from tests import support
from tests.support import GOLDEN, assert_golden, golden_parts, parse

HTML_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(\s[^>]*)?>")
HTML_ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);")
PARTNER = "org-1204"
BRANDED = BrandConfig.model_validate(
    {
        "default": "Cloud Portal",
        "partners": {
            PARTNER: {
                "display_name": "BluePeak Portal",
                "logo_url": "https://bluepeak.example/assets/logo.png",
                "primary_color": "#0f766e",
                "footer": "BluePeak AV AB, Storgatan 1, 111 51 Stockholm",
                "reply_to": "support@bluepeak.example",
            }
        },
    }
)
DIRECTORY = preview_directory()
TRANSLATED = sorted(
    (spec.id, locale)
    for spec in support.catalog()
    for locale in support.templates().locales(spec.id)[1:]  # every shipped locale but English
)
GERMAN = sorted(notification for notification, locale in TRANSLATED if locale == "de")


def rendered(notification: str, locale: str, brand: BrandConfig | None = None) -> OutgoingEmail:
    """The first email to a person (else a configured copy) of `notification`, rendered from its
    example with every person's locale set to `locale` (and the partner branded, with `brand`)."""
    spec = support.catalog()[notification]
    document = with_locale(example_for(spec, DIRECTORY), locale)
    if brand is not None:
        document = with_partner(document, PARTNER)
    emails = render_preview(spec, event_from(document), support.renderer(brand), DIRECTORY)
    return next((email for email in emails if email.envelope_to != PREVIEW_COPIES), emails[0])


def golden_with_headers(email: OutgoingEmail) -> dict[str, str]:
    message = parse(email)
    headers = "".join(
        f"{name}: {message[name]}\n"
        for name in ("From", "Reply-To", "To", "Subject", "Content-Language")
        if message[name] is not None
    )
    return {"headers.txt": headers, **golden_parts(email)}


def test_german_ships_for_the_order_confirmations_and_renewal_alerts() -> None:
    assert (
        sorted(
            [
                "change_confirmation",
                "order_confirmation_change",
                "order_confirmation_new",
                "order_placed",
                "plan_expired",
                "plan_expiry_reminder",
                "plan_renewed",
                "plan_will_be_renewed",
                "plan_will_not_be_renewed",
            ]
        )
        == GERMAN
    )


@pytest.mark.parametrize(("notification", "locale"), TRANSLATED)
def test_translated_rendering_matches_golden_files(notification: str, locale: str) -> None:
    email = rendered(notification, locale)
    assert (email.locale, parse(email)["Content-Language"]) == (locale, locale)
    english = rendered(notification, "en")
    assert email.subject != english.subject
    assert email.template_version != english.template_version
    assert_golden(GOLDEN / "locales" / f"{notification}.{locale}", golden_with_headers(email))


@pytest.mark.parametrize(
    ("notification", "locale", "branded"),
    [
        ("order_confirmation_new", "de-AT", True),
        ("order_confirmation_new", "en", True),
        ("order_confirmation_new", "fr-FR", False),
        ("plan_renewed", "de", True),
        ("subscription_renewed", "de-CH", True),  # no German templates: English, branded
    ],
)
def test_branded_and_fallback_renderings_match_golden_files(
    notification: str, locale: str, branded: bool
) -> None:
    email = rendered(notification, locale, BRANDED if branded else None)
    name = f"{notification}.{locale}.{'partner' if branded else 'default'}"
    assert_golden(GOLDEN / "locales" / name, golden_with_headers(email))


def test_a_regional_locale_takes_the_language_templates_and_the_regional_formats() -> None:
    austrian = rendered("order_confirmation_new", "de-AT")
    german = rendered("order_confirmation_new", "de")
    assert austrian.locale == german.locale == "de"
    assert austrian.template_version == german.template_version
    html = support.html_part(parse(austrian))
    assert '<html lang="de-AT">' in html
    assert "2. Juni 2025" in support.text_part(parse(austrian))  # order.placed_at, in German
    assert "6.250,00 EUR" in support.text_part(parse(austrian))


def test_a_locale_without_templates_falls_back_to_english_with_english_formats() -> None:
    email = rendered("order_confirmation_new", "fr-FR")
    text = support.text_part(parse(email))
    assert email.locale == "en"
    assert "2 June 2025" in text and "6,250.00 EUR" in text  # not "2 juin 2025"
    assert '<html lang="en">' in support.html_part(parse(email))


def test_branding_sets_the_display_name_and_reply_to_but_never_the_from_address() -> None:
    default = parse(rendered("order_confirmation_new", "en"))
    branded_email = rendered("order_confirmation_new", "en", BRANDED)
    branded = parse(branded_email)
    operator_address = parseaddr(str(default["From"]))[1]
    assert parseaddr(str(branded["From"])) == ("BluePeak Portal", operator_address)
    assert parseaddr(str(branded["Reply-To"])) == ("BluePeak Portal", "support@bluepeak.example")
    assert default["Reply-To"] is None
    assert branded_email.envelope_from == operator_address  # the SMTP MAIL FROM too
    assert branded_email.brand == PARTNER and rendered("order_confirmation_new", "en").brand == (
        "default"
    )
    assert "BluePeak Portal" in str(branded["Subject"])


def test_branding_colours_logo_and_footer_are_inlined_into_the_html() -> None:
    html = support.html_part(parse(rendered("order_confirmation_new", "en", BRANDED)))
    assert "background-color: #0f766e" in html  # masthead and button, inlined
    assert '<img class="logo" src="https://bluepeak.example/assets/logo.png"' in html
    assert 'alt="BluePeak Portal"' in html  # readable with images off
    assert "BluePeak AV AB, Storgatan 1, 111 51 Stockholm" in html
    text = support.text_part(parse(rendered("order_confirmation_new", "en", BRANDED)))
    assert "BluePeak AV AB, Storgatan 1, 111 51 Stockholm" in text
    assert "replies reach BluePeak Portal" in text


def test_an_unbranded_partner_gets_the_default_brand() -> None:
    email = rendered("order_confirmation_new", "en", BrandConfig())
    html = support.html_part(parse(email))
    assert email.brand == "default"
    assert email.subject == (
        "Order confirmation from Cloud Portal (new): PO-2025-004817 for Northwind Health"
    )
    assert "background-color: #1f3a5f" in html and "<img" not in html


def test_css_is_inlined_and_only_media_queries_stay_in_a_style_block() -> None:
    html = support.html_part(parse(rendered("order_confirmation_new", "en")))
    assert 'class="masthead" style="padding: 20px 32px;background-color: #1f3a5f;' in html
    style_blocks = html.split("<style>")[1:]
    assert len(style_blocks) == 1 and style_blocks[0].lstrip().startswith("@media")
    assert 'class="preheader" style="display: none;' in html  # the preheader is hidden inline


def test_every_html_email_has_a_preheader_and_every_text_part_stands_alone() -> None:
    for notification in sorted(spec.id for spec in support.catalog()):
        email = rendered(notification, "en")
        message = parse(email)
        html = support.html_part(message)
        preheader = html.split('class="preheader"', 1)[1].split(">", 1)[1].split("<", 1)[0]
        assert preheader.strip("\u2007\u034f "), f"{notification} has an empty preheader"
        text = support.text_part(message)
        # No markup or HTML entities in the text part, and it says who sent it and why.
        assert not HTML_TAG.search(text), f"{notification}: {HTML_TAG.search(text)}"
        assert not HTML_ENTITY.search(text), notification
        assert "This is an automatic message from Cloud Portal" in text, notification
        assert text.splitlines()[0].startswith(("Hello", "Hi", "Dear")), notification


def test_the_layout_survives_outlook_and_small_screens() -> None:
    html = support.html_part(parse(rendered("order_confirmation_new", "en")))
    # Outlook for Windows ignores max-width: it alone sees a fixed 600 px table around the body.
    assert html.count("<!--[if mso]>") == 2
    assert '<!--[if mso]><table role="presentation" width="600"' in html
    assert 'class="container" role="presentation" width="600"' in html
    assert "max-width: 600px" in html
    assert "@media only screen and (max-width: 620px)" in html


def test_babel_formats_per_locale() -> None:
    moment = datetime(2026, 10, 1, 8, 5, tzinfo=UTC)
    money = SimpleNamespace(amount="-1234567.5", currency="EUR")
    assert format_date(moment) == "1 October 2026"
    assert format_date(moment, "de") == "1. Oktober 2026"
    assert format_date(moment, "en-US") == "October 1, 2026"
    assert format_datetime(moment, "de-AT") == "1. Oktober 2026, 08:05 UTC"
    assert format_money(money) == "-1,234,567.50 EUR"
    assert format_money(money, "de") == "-1.234.567,50 EUR"
    assert format_money(SimpleNamespace(amount="0.125", currency="USD"), "de") == "0,125 USD"
    assert format_number(1250, "de") == "1.250" and format_number(1250) == "1,250"
    assert format_number("n/a", "de") == "n/a"


def test_locale_tags_and_fallback_chains() -> None:
    assert canonical("DE_at") == "de-AT"
    assert canonical("") == "en"
    assert fallback_chain("de-AT") == ("de-AT", "de", "en")
    assert fallback_chain("zh-hant-TW") == ("zh-Hant-TW", "zh-Hant", "zh", "en")
    assert fallback_chain("en-GB") == ("en-GB", "en")


def test_template_sets_resolve_along_the_chain_and_carry_a_content_hash() -> None:
    templates = Templates()
    assert templates.template_set("order_placed", "de-AT").locale == "de"
    assert templates.template_set("order_placed", "nb-NO").locale == "en"
    assert templates.template_set("subscription_renewed", "de").locale == "en"
    versions = {templates.template_set(n, "en").version for n in GERMAN}
    assert len(versions) == len(GERMAN)  # each set hashes its own files


def test_button_text_stays_readable_on_any_primary_colour() -> None:
    assert readable_on("#1f3a5f") == "#ffffff"
    assert readable_on("#ffcc00") == "#111827"
    assert readable_on("#ffffff") == "#111827"
