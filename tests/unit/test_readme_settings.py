"""The README's "Settings" table and the settings model (`service/settings.py`) stay in step:
every setting has a row, every row is a setting (or the webhook secrets the senders read by
name), and every default the table shows is the model's, read the way the environment gives it
(`RETRY_DELAYS_MS` as a JSON list, `none` for unset)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from unittest.mock import patch

from pydantic import SecretStr

from herald.senders.webhook import secret_variable
from herald.service.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
PREFIX = "HERALD_"
# Read by the webhook sender by name, one per configured webhook: not a field of the model.
WEBHOOK_SECRETS = "WEBHOOK_SECRET_<NAME>"
# How the table says "no default" (the model's None).
UNSET = re.compile(r"^(none|unlimited)\b")


def settings_table(readme: str) -> dict[str, str]:
    """Each variable of the table under "## Settings" (without the prefix) and its default as
    written; a row naming two variables (`SMTP_HOST`, `SMTP_PORT`) gives each its own default."""
    section = readme.split("\n## Settings\n", 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append(line)
        elif rows:  # the end of the first table
            break
    table: dict[str, str] = {}
    for row in rows[2:]:  # after the header and its rule
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        names = re.findall(r"`([A-Z0-9_<>]+)`", cells[0])
        defaults = [part.strip() for part in re.findall(r"`[^`]*`|[^,`]+", cells[1])]
        defaults = [part for part in defaults if part]
        if len(defaults) == 1:
            defaults *= len(names)
        assert len(defaults) == len(names), f"row {cells[0]}: {len(names)} names, {cells[1]}"
        for name, default in zip(names, defaults, strict=True):
            assert name not in table, f"{name} has two rows"
            table[name] = default
    return table


def problems(table: dict[str, str]) -> list[str]:
    """What differs between the table and the model, one line each; empty when in step."""
    fields = {name.upper(): name for name in Settings.model_fields}
    found = [
        f"{PREFIX}{name} has no row in the README" for name in sorted(set(fields) - set(table))
    ]
    for name, written in table.items():
        if name == WEBHOOK_SECRETS:
            if not secret_variable("bluepeak-catalog").startswith(PREFIX + "WEBHOOK_SECRET_"):
                found.append(f"{name}: the webhook sender reads other variables")
            continue
        if name not in fields:
            found.append(f"{PREFIX}{name} is in the README but is no setting")
            continue
        field = fields[name]
        default = Settings.model_fields[field].default
        if UNSET.match(written):
            if default is not None:
                found.append(f"{PREFIX}{name}: README says {written}, the default is {default!r}")
            continue
        if not (written.startswith("`") and written.endswith("`")):
            found.append(f"{PREFIX}{name}: README default {written} is neither `value` nor none")
            continue
        value = _from_environment(name, written.strip("`"), field)
        if value != default:
            found.append(f"{PREFIX}{name}: README says {written}, the default is {default!r}")
    return found


def _from_environment(name: str, text: str, field: str) -> object:
    """The value the model makes of `text` given as HERALD_<name> (and nothing else set)."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith(PREFIX)}
    environment[PREFIX + name] = text
    with patch.dict(os.environ, environment, clear=True):
        try:
            value: object = getattr(Settings(), field)
        except ValueError as exc:
            return f"invalid ({exc.__class__.__name__})"
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_the_readme_lists_every_setting_with_its_real_default() -> None:
    assert problems(settings_table(README.read_text("utf-8"))) == []


def test_the_check_names_a_missing_row_an_unknown_row_and_a_wrong_default() -> None:
    readme = README.read_text("utf-8")
    assert "| `PREFETCH` | `64` |" in readme and "| `LOG_LEVEL` | `INFO` |" in readme
    doctored = readme.replace("| `PREFETCH` | `64` |", "| `PREFETCH` | `32` |")
    doctored = re.sub(r"\n\| `LOG_LEVEL` \|[^\n]*", "", doctored)
    doctored = doctored.replace("| `CONFIG` |", "| `COLOUR` | `blue` | made up |\n| `CONFIG` |", 1)
    assert sorted(problems(settings_table(doctored))) == [
        "HERALD_COLOUR is in the README but is no setting",
        "HERALD_LOG_LEVEL has no row in the README",
        "HERALD_PREFETCH: README says `32`, the default is 64",
    ]
