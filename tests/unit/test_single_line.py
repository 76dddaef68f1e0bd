"""Names and other single-line values render on one line: a line break in a name must not
become a line of its own in the text part (a spoofed "Your password was reset" line), while
multi-line free text such as a comment keeps its lines (EVENTS.md 4: both are valid input)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from herald.schemas.examples import load_example
from herald.schemas.scalars import LongText, Name, ShortText
from tests import support

SPOOF = "Jonas\n\nYour password was reset, click http://evil.example/reset"

BREAKS = ["\n", "\r\n", "\r", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\t", "\x00", "\x1b"]


@pytest.mark.parametrize("kind", [Name, ShortText], ids=["Name", "ShortText"])
@pytest.mark.parametrize("line_break", BREAKS, ids=repr)
def test_single_line_text_loses_its_line_breaks_and_controls(kind: Any, line_break: str) -> None:
    value = TypeAdapter(kind).validate_python(f"Jonas{line_break}{line_break}Berg")
    assert value == "Jonas Berg"


@pytest.mark.parametrize("kind", [Name, ShortText], ids=["Name", "ShortText"])
def test_single_line_text_is_otherwise_unchanged(kind: Any) -> None:
    for value in [
        "Jonas Berg",
        "Åsa Öberg-Núñez",
        "BluePeak\u00a0AV",
        "李雷",
        "👩‍💻 Dev",
        " x ",
        "\u00a0x\u00a0",
    ]:
        assert TypeAdapter(kind).validate_python(value) == value


def test_multi_line_free_text_keeps_its_lines() -> None:
    comment = "Please change:\n- 20 seats\r\n- annual billing\n\nThanks"
    assert TypeAdapter(LongText).validate_python(comment) == comment


def _text_lines(document: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for email in support.render_all(document):
        lines += support.text_part(support.parse(email)).splitlines()
    return lines


def test_a_name_with_line_breaks_renders_on_one_line_in_text_and_html() -> None:
    document = load_example("orders.order.placed")
    document["data"]["order"]["placed_by"]["name"] = SPOOF
    document["data"]["customer"]["name"] = "Northwind\r\nHealth"
    emails = support.render_all(document)
    assert emails
    for email in emails:
        message = support.parse(email)
        text = support.text_part(message)
        assert not any(line.startswith("Your password") for line in text.splitlines())
        assert "Northwind\nHealth" not in text and "Northwind Health" in text
        html = support.html_part(message)
        assert "Jonas\n" not in html and "Northwind\r\nHealth" not in html
    placer_text = [
        support.text_part(support.parse(email))
        for email in emails
        if email.envelope_to == "jonas@bluepeak.example"
    ]
    assert placer_text
    assert (
        "Hello Jonas Your password was reset, click http://evil.example/reset," in (placer_text[0])
    )


def test_a_comment_keeps_its_lines_in_the_text_part() -> None:
    document = load_example("orders.quote.change_requested")
    document["data"]["comment"] = "Please change:\n- 20 seats\n- annual billing"
    lines = _text_lines(document)
    assert "  - 20 seats" in lines and "  - annual billing" in lines
