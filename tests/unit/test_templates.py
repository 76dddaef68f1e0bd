"""Every notification in the catalog renders, from the shipped example events, with
StrictUndefined, into a well-formed multipart/alternative email."""

from __future__ import annotations

import pytest

from herald.schemas.examples import example_names, load_example
from herald.tools.preview import preview_directory
from tests import support

EXAMPLES = example_names()


DIRECTORY = preview_directory()


def test_every_notification_is_rendered_by_some_example() -> None:
    rendered = {
        email.notification
        for name in EXAMPLES
        for email in support.render_every_kind(load_example(name), DIRECTORY)
    }
    missing = {spec.id for spec in support.catalog()} - rendered
    assert not missing, f"no example event triggers: {sorted(missing)}"


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_renders_complete_emails(name: str) -> None:
    for email in support.render_every_kind(load_example(name), DIRECTORY):
        message = support.parse(email)
        assert message.get_content_type() == "multipart/alternative"
        assert message["Subject"] == email.subject
        assert email.subject.strip() and "\n" not in email.subject
        assert len(email.subject) <= 200
        text = support.text_part(message)
        html = support.html_part(message)
        assert len(text.strip()) > 40, "the text part must be readable on its own"
        assert "<table" in html and "</html>" in html
        assert "None" not in text, f"{email.notification}: a missing value rendered as None"
        assert ">None<" not in html, f"{email.notification}: a missing value rendered as None"
