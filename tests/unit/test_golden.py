"""Golden files: the subject, text and HTML of every notification type, rendered from a fixed
example, so that an unintended template change fails. After an intended change, regenerate with
`HERALD_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_golden.py` and review the diff."""

from __future__ import annotations

import pytest

from herald.renderers.email import OutgoingEmail
from herald.schemas.examples import example_names, load_example
from tests import support
from tests.support import GOLDEN, assert_golden, golden_parts
from tests.unit.test_templates import DIRECTORY


def _first_rendering() -> dict[str, OutgoingEmail]:
    """For each notification, its first email from the first example (sorted) that renders it."""
    found: dict[str, OutgoingEmail] = {}
    for name in example_names():
        for email in support.render_every_kind(load_example(name), DIRECTORY):
            found.setdefault(email.notification, email)
    return found


RENDERINGS = _first_rendering()


@pytest.mark.parametrize("notification", sorted(spec.id for spec in support.catalog()))
def test_rendering_matches_golden_files(notification: str) -> None:
    assert_golden(GOLDEN / notification, golden_parts(RENDERINGS[notification]))
