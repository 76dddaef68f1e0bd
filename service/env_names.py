"""Typo'd settings: `HERALD_*` environment variables that no setting reads, each with the
closest setting's name (`HERALD_SMPT_HOST` -> `HERALD_SMTP_HOST`). pydantic-settings ignores
unknown names, so without this a typo silently leaves the default in force."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

PREFIX = "HERALD_"

# Names read outside the settings model, never warned about. Keep in step with
# `grep -rn HERALD_` over the repository.
READ_ELSEWHERE = frozenset(
    {
        "HERALD_OPERATOR",  # who runs `herald replay` (service/replay_cli.py)
        "HERALD_FAULT_AT",  # crash injection for the fault suite (herald/faultpoints.py)
        "HERALD_UPDATE_GOLDEN",  # tests: rewrite the golden emails
        "HERALD_SCREENSHOTS",  # tests: where the browser tests put screenshots
        "HERALD_TEST_POSTGRES",  # tests: the PostgreSQL admin DSN
    }
)
# Families of names read elsewhere: a webhook's signing secret (senders/webhook.py).
READ_ELSEWHERE_PREFIXES = ("HERALD_WEBHOOK_SECRET_",)


def unknown_variables(
    environ: Mapping[str, str], settings: Iterable[str]
) -> list[tuple[str, str | None]]:
    """Each `HERALD_*` name in `environ` that is neither one of `settings` (field names, as
    `smtp_host`) nor read elsewhere, with the closest setting's variable or None; sorted.
    Names compare case-insensitively, as pydantic-settings reads them."""
    known = {field.upper() for field in settings}
    unknown: list[tuple[str, str | None]] = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper.removeprefix(PREFIX) in known:
            continue
        if upper in READ_ELSEWHERE or upper.startswith(READ_ELSEWHERE_PREFIXES):
            continue
        # Compared without the prefix, which every name shares and which would make every
        # candidate look alike.
        close = difflib.get_close_matches(upper.removeprefix(PREFIX), sorted(known), n=1)
        unknown.append((name, PREFIX + close[0] if close else None))
    return unknown


def warning_text(name: str, suggestion: str | None) -> str:
    """The one-line warning for an unknown variable (its value is never shown)."""
    text = f"{name} is not a Herald setting and is ignored"
    return f"{text}; did you mean {suggestion}?" if suggestion else text
