"""Golden files: the subject, text and HTML of every notification type, rendered from a fixed
example, so that an unintended template change fails. After an intended change, regenerate with
`HERALD_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_golden.py` and review the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from renderers.email import OutgoingEmail
from schemas.examples import example_names, load_example
from tests import support
from tests.support import html_part, parse, text_part
from tests.unit.test_templates import DIRECTORY

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
UPDATE = os.environ.get("HERALD_UPDATE_GOLDEN") == "1"


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
    email = RENDERINGS[notification]
    message = parse(email)
    rendered = {
        "subject.txt": email.subject + "\n",
        "body.txt": text_part(message).replace("\r\n", "\n"),
        "body.html": html_part(message).replace("\r\n", "\n"),
    }
    folder = GOLDEN / notification
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in rendered.items():
            (folder / name).write_text(content, "utf-8")
    for name, content in rendered.items():
        path = folder / name
        assert path.exists(), f"no golden file {path}; run with HERALD_UPDATE_GOLDEN=1"
        assert content == path.read_text("utf-8"), f"{notification}/{name} changed"
