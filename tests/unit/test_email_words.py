"""The shared parts of the emails' words (issue 20): label tables, error explanations, "you" for
the reader, the salutation and list copies, the From display name, and previews drawn from
examples that really trigger their type."""

from __future__ import annotations

import logging
from email.headerregistry import Address
from pathlib import Path
from types import SimpleNamespace

import pytest

from herald.errors import ConfigurationError
from herald.renderers.branding import BrandConfig
from herald.renderers.email import EmailRenderer
from herald.renderers.labels import Labels
from herald.schemas.examples import load_example
from herald.service.settings import Settings
from herald.tools.preview import (
    PREVIEW_COPIES,
    PreviewRequest,
    applies,
    example_for,
    preview,
    preview_directory,
)
from tests import support


@pytest.fixture
def labels() -> Labels:
    return support.templates().labels


def test_labels_come_from_the_table_of_the_readers_language(labels: Labels) -> None:
    assert labels.label("other", "deactivation_reason", "en") == "Not stated"
    assert labels.label("other", "deactivation_reason", "de-AT") == "Nicht angegeben"
    # A language without a table falls back to English, entry by entry
    assert labels.label("trial_ended", "deactivation_reason", "sv-SE") == "Trial ended"


def test_an_unknown_value_renders_humanised_and_is_logged_once(
    labels: Labels, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "herald.renderers.labels")
    for _ in range(3):
        assert labels.label("moved_to_archive", "deactivation_reason", "de") == "Moved to archive"
    logged = [record for record in caplog.records if "moved_to_archive" in record.getMessage()]
    assert len(logged) == 1
    assert "deactivation_reason" in logged[0].getMessage()


def test_a_table_no_language_has_is_a_template_bug(labels: Labels) -> None:
    with pytest.raises(ConfigurationError, match="no label table 'reasons'"):
        labels.label("other", "reasons", "en")


def test_split_label_files_merge_and_a_key_twice_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "labels"
    folder.mkdir()
    (folder / "en.yaml").write_text("reason:\n  a: A\n")
    (folder / "en.extra.yaml").write_text("reason:\n  b: B\nstatus:\n  c: C\n")
    merged = Labels(tmp_path)
    assert [
        merged.label(v, t, "en") for v, t in (("a", "reason"), ("b", "reason"), ("c", "status"))
    ] == ["A", "B", "C"]
    (folder / "en.more.yaml").write_text("reason:\n  a: again\n")
    with pytest.raises(ConfigurationError, match="labels reason \\['a'\\] again"):
        Labels(tmp_path)


def test_error_codes_are_explained_with_a_next_step(labels: Labels) -> None:
    known = labels.explain("payment_declined", "de")
    assert known.known and known.label == "Zahlung abgelehnt"
    assert "Zahlungsmethode" in known.next_step
    unknown = labels.explain("ledger_on_fire", "en")
    assert not unknown.known
    assert unknown.label == "Ledger on fire"
    assert unknown.next_step.startswith("Check the details below and retry")


def test_the_recipient_test_compares_addresses_case_insensitively() -> None:
    template = support.templates().text.from_string(
        "{{ 'you' if person is recipient else person.name }}"
    )
    reader = SimpleNamespace(email="Kim.Larsen@Example.com")
    person = SimpleNamespace(email="kim.larsen@example.com", name="Kim Larsen")
    other = SimpleNamespace(email="jonas@example.com", name="Jonas Berg")
    assert template.render(recipient=reader, person=person) == "you"
    assert template.render(recipient=reader, person=other) == "Jonas Berg"


def _catalog_change_emails() -> list[str]:
    spec = support.catalog()["catalog_changed"]
    emails = preview(spec, PreviewRequest(), support.renderer())
    return [support.text_part(support.parse(email)) for email in emails]


def test_a_list_copy_is_greeted_plainly_and_told_which_list_it_is_for() -> None:
    (text,) = _catalog_change_emails()
    first, blank, why = text.splitlines()[:3]
    assert (first, blank) == ("Hello,", "")
    assert why == "This is a copy for the catalog change list of Harbor IT Solutions."
    assert "Hello there" not in text


def test_the_from_display_name_follows_the_brand_unless_the_operator_names_one() -> None:
    document = load_example("orders.order.placed")
    plain = support.parse(support.render_all(document)[0])
    assert plain["From"] == "Cloud Portal <notifications@herald.localhost>"
    named = Settings(smtp_from="Ops Desk <ops@operator.example>").sender
    renderer = EmailRenderer(support.templates(), BrandConfig(), named)
    email = renderer.render(support.event_of(document), support.plan(document).deliveries[0])
    assert support.parse(email)["From"] == "Ops Desk <ops@operator.example>"
    bare = EmailRenderer(
        support.templates(), BrandConfig(default="Acme Cloud"), Address(addr_spec="n@acme.example")
    )
    email = bare.render(support.event_of(document), support.plan(document).deliveries[0])
    assert support.parse(email)["From"] == "Acme Cloud <n@acme.example>"


@pytest.mark.parametrize(
    "notification", ["teams_cvi_usage_threshold", "teams_cvi_oversubscription"]
)
def test_threshold_previews_come_from_a_report_that_crosses_that_threshold(
    notification: str,
) -> None:
    spec = support.catalog()[notification]
    document = example_for(spec, preview_directory())
    data = document["data"]
    peak, capacity = data["peak_concurrent_calls"], data["licensed_capacity"]
    if notification == "teams_cvi_oversubscription":
        assert peak > capacity
    else:
        assert 80 * capacity <= 100 * peak <= 100 * capacity
    # And the 85 % report is no example of oversubscription
    usage = support.event_of(load_example("interop.teams.usage_reported"))
    assert applies(support.catalog()["teams_cvi_oversubscription"], usage) is False


def test_preview_shows_the_draft_2_trial_activity_copy_of_an_end_user_reminder() -> None:
    spec = support.catalog()["trial_reminder_end_user"]
    emails = preview(spec, PreviewRequest(), support.renderer())
    assert PREVIEW_COPIES in {email.envelope_to for email in emails}
