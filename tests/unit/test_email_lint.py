"""The email lint (tests/email_lint.py) over every notification type, every shipped locale and
every example event that triggers the type, for every recipient it goes to; and the subjects of
different types never read the same."""

from __future__ import annotations

from collections import defaultdict
from functools import cache

import pytest

from herald.schemas.examples import example_names, load_example
from herald.tools.preview import preview_directory, with_locale
from tests import support
from tests.email_lint import Rendered, problems

DIRECTORY = preview_directory()


@cache
def renderings() -> dict[str, list[Rendered]]:
    """Notification id -> every rendering of it."""
    found: dict[str, list[Rendered]] = defaultdict(list)
    templates = support.templates()
    for name in example_names():
        document = load_example(name)
        for locale in ("en", "de"):
            localised = document if locale == "en" else with_locale(document, locale)
            for email in support.render_every_kind(localised, DIRECTORY):
                if locale not in templates.locales(email.notification):
                    continue  # not shipped in this locale: the English rendering covers it
                message = support.parse(email)
                to = message["To"]
                found[email.notification].append(
                    Rendered(
                        notification=email.notification,
                        locale=locale,
                        example=name,
                        recipient_name=to.addresses[0].display_name,
                        subject=email.subject,
                        text=support.text_part(message),
                        html=support.html_part(message),
                    )
                )
    return found


@pytest.mark.parametrize("notification", sorted(spec.id for spec in support.catalog()))
def test_every_rendering_passes_the_email_lint(notification: str) -> None:
    emails = renderings()[notification]
    assert emails, f"no example renders {notification}"
    report = [
        f"{email.locale} {email.example} to {email.recipient_name or '(list)'}: {problem}"
        for email in emails
        for problem in problems(email)
    ]
    assert not report, "\n".join(dict.fromkeys(report))


def test_no_two_types_share_a_subject() -> None:
    by_subject: dict[tuple[str, str], set[str]] = defaultdict(set)
    for emails in renderings().values():
        for email in emails:
            by_subject[(email.locale, email.subject)].add(email.notification)
    shared = {subject: types for subject, types in by_subject.items() if len(types) > 1}
    assert not shared, shared


def test_the_lint_itself_catches_each_defect_it_names() -> None:
    """The rules on a hand-made bad email: a link only in the footer does not count, and each
    defect of the issue is reported."""
    bad = Rendered(
        notification="example",
        locale="en",
        example="hand-made",
        recipient_name="Jonas Berg",
        subject="Trial ended",
        text=(
            "Hello there,\r\n\r\nJonas Berg placed the order.\r\nReason: other\r\n"
            "Error: payment_declined\r\n\r\n--\r\nManage: https://portal.example/\r\n"
        ),
        html='<html><body><div class="preheader">payment_declined</div><p>Hi</p></body></html>',
    )
    found = "\n".join(problems(bad))
    for expected in (
        '"Hello there"',
        "in the third person",
        "enum values shown raw: ['Reason: other']",
        "internal codes shown to the reader: ['payment_declined']",
        "no link and no 'no action needed' sentence",
        "preheader: not a sentence",
    ):
        assert expected in found, (expected, found)
