"""Header safety: CR/LF and RFC 2047 encoded-word injection in names and subjects."""

from __future__ import annotations

from typing import Any

import pytest

from herald.renderers.headers import clean_header_text
from herald.schemas.examples import load_example
from tests import support

ATTACKS = [
    "Mia\r\nBcc: evil@attacker.example",
    "Mia\nBcc: evil@attacker.example",
    "=?UTF-8?Q?=0A?=Bcc: evil@attacker.example",
    "=?UTF-8?Q?Mia=0D=0ABcc:_evil@attacker.example?=",
    "Mia\x00\x1b[31m\u2028Bcc: evil@attacker.example",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_clean_header_text_removes_line_breaks_and_encoded_words(attack: str) -> None:
    cleaned = clean_header_text(attack)
    assert not any(char in cleaned for char in "\r\n\x00\x1b\u2028")
    assert "=?" not in cleaned


def test_subject_is_cut_to_200_characters() -> None:
    assert len(clean_header_text("x" * 500, 200)) == 200


def _placed_with(name: str) -> dict[str, Any]:
    document = load_example("orders.order.placed")
    document["data"]["order"]["placed_by"]["name"] = name
    document["data"]["customer"]["name"] = name
    return document


@pytest.mark.parametrize("attack", ATTACKS)
def test_injection_in_names_never_adds_a_header_or_recipient(attack: str) -> None:
    emails = support.render_all(_placed_with(attack))
    assert emails
    for email in emails:
        message = support.parse(email)
        assert message["Bcc"] is None and message["Cc"] is None
        assert len(message.get_all("To") or []) == 1
        head = email.content.split(b"\r\n\r\n", 1)[0]
        assert b"\nBcc:" not in head
        assert email.envelope_to == message["To"].addresses[0].addr_spec
        assert "evil@attacker.example" not in [a.addr_spec for a in message["To"].addresses]


def test_html_escapes_event_text() -> None:
    document = load_example("orders.order.placed")
    document["data"]["customer"]["name"] = '<script>alert("x")</script> & Co'
    (email, *_) = support.render_all(document)
    html = support.html_part(support.parse(email))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html and "&amp; Co" in html
    text = support.text_part(support.parse(email))
    assert '<script>alert("x")</script> & Co' in text


def test_unicode_names_survive_encoding() -> None:
    emails = support.render_all(_placed_with("Zoë Ångström"))
    message = support.parse(emails[0])
    assert message["To"].addresses[0].display_name == "Zoë Ångström"


def test_message_id_is_derived_from_the_instance_key() -> None:
    document = load_example("orders.order.placed")
    first = support.render_all(document)
    again = support.render_all(document)
    assert [e.message_id for e in first] == [e.message_id for e in again]
    assert len({e.message_id for e in first}) == len(first)
    document["id"] = "another-event-id"
    assert {e.message_id for e in support.render_all(document)}.isdisjoint(
        {e.message_id for e in first}
    )


def test_direct_mime_parses_back_to_the_same_headers_parts_and_text() -> None:
    from email import message_from_bytes, policy

    from herald.renderers.mime import build_alternative, encode_address, encode_text_header

    subject = "Bestellbestätigung für Zoë Ångström – " + "sehr lange Zeile " * 8 + "€"
    text = "Grüße, Zoë!\n" + "ä" * 120 + "\nline with = sign and trailing space \nEnde"
    html = "<p>Grüße, <b>Zoë</b> &amp; Co — " + "ü" * 100 + "</p>"
    content = build_alternative(
        [
            ("From", encode_address("Portal Ünïcode, Inc.", "notifications@operator.example")),
            ("To", encode_address("Zoë Ångström", "zoe@example.com")),
            ("Subject", encode_text_header(subject)),
        ],
        text,
        html,
        "=_boundary",
    )
    head = content.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))  # folded
    assert head.isascii()
    message = message_from_bytes(content, policy=policy.default)
    assert message["Subject"] == subject
    assert message["From"].addresses[0].display_name == "Portal Ünïcode, Inc."
    assert message["To"].addresses[0].addr_spec == "zoe@example.com"
    assert message["To"].addresses[0].display_name == "Zoë Ångström"
    plain = message.get_body(("plain",))
    rich = message.get_body(("html",))
    assert plain is not None and rich is not None
    assert plain.get_content().replace("\r\n", "\n") == text
    assert rich.get_content().replace("\r\n", "\n").rstrip("\n") == html
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
