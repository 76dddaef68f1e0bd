"""Every notification in the catalog renders, from the shipped example events, with
StrictUndefined, into a well-formed multipart/alternative email."""

from __future__ import annotations

import pytest

from catalog.config import CATEGORIES, CategoryRecipients
from schemas.examples import example_names, load_example
from tests import support

EXAMPLES = example_names()


def _configured_everywhere() -> dict[str, dict[str, CategoryRecipients]]:
    """Configured copies for every partner of every example, so config-only notifications
    (OTJ distribution, catalog changes) render too."""
    partners = set()
    for name in EXAMPLES:
        partner = load_example(name)["data"].get("partner")
        if partner:
            partners.add(partner["id"])
    entry = CategoryRecipients(emails=["copies@partner.example"])
    return {partner: dict.fromkeys(CATEGORIES, entry) for partner in partners}


DIRECTORY = _configured_everywhere()


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
