"""The words for enum values and error codes people read: one label table per language
(`templates/labels/<locale>.yaml`, and `<locale>.<part>.yaml` beside it), never a template that
prints the value.

Templates write `{{ reason | label("deactivation_reason") }}` and, for an upstream error code,
`{% set problem = error.code | explain %}` (`problem.label`, `problem.explanation`,
`problem.next_step`). A value the table lacks still renders, as its humanised form
(`quantity_below_commitment` -> `Quantity below commitment`), and is logged once so the table
can be completed. A locale's table falls back to English entry by entry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from herald.errors import ConfigurationError
from herald.renderers.locales import DEFAULT_LOCALE, fallback_chain

LABELS = "labels"
ERROR_TABLE = "error_code"
_LOGGED_LIMIT = 1_000  # distinct missing values logged per process; event data is unbounded

log = logging.getLogger("herald.renderers.labels")


@dataclass(frozen=True, slots=True)
class Explained:
    """An upstream error code in words: what it is called, what it means, what to do next."""

    code: str
    label: str
    explanation: str
    next_step: str
    known: bool


Table = dict[str, Any]


def humanized(value: str) -> str:
    """`quantity_below_commitment` -> `Quantity below commitment`."""
    words = value.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


class Labels:
    """The label tables of every shipped language, loaded once."""

    def __init__(self, templates_dir: Path) -> None:
        self._tables: dict[str, dict[str, Table]] = {}
        folder = templates_dir / LABELS
        # `en.yaml`, and any `en.<part>.yaml` beside it, make up the English tables.
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            try:
                document = yaml.safe_load(path.read_text("utf-8")) or {}
            except yaml.YAMLError as exc:
                raise ConfigurationError(f"labels: {path} is not valid YAML: {exc}") from None
            if not isinstance(document, dict) or not all(
                isinstance(table, dict) for table in document.values()
            ):
                raise ConfigurationError(f"labels: {path} must map table names to tables")
            tables = self._tables.setdefault(path.name.split(".")[0], {})
            for name, entries in document.items():
                table = tables.setdefault(name, {})
                twice = sorted(set(table) & set(entries))
                if twice:
                    raise ConfigurationError(f"labels: {path} labels {name} {twice} again")
                table.update(entries)
        if DEFAULT_LOCALE not in self._tables:
            raise ConfigurationError(f"labels: {folder / (DEFAULT_LOCALE + '.yaml')} is missing")
        self._logged: set[tuple[str, str]] = set()

    def _entry(self, table: str, value: str, locale: str) -> Any:
        for candidate in fallback_chain(locale):
            entry = self._tables.get(candidate, {}).get(table, {}).get(value)
            if entry is not None:
                return entry
        if table not in self._tables[DEFAULT_LOCALE]:
            # A template naming a table that does not exist is a template bug, not data.
            raise ConfigurationError(f"labels: no label table {table!r}")
        self._missing(table, value)
        return None

    def label(self, value: Any, table: str, locale: str) -> str:
        if value is None:
            return ""
        text = str(value)
        entry = self._entry(table, text, locale)
        if entry is None:
            return humanized(text)
        return str(entry["label"] if isinstance(entry, dict) else entry)

    def explain(self, code: Any, locale: str) -> Explained:
        text = str(code)
        entry = self._entry(ERROR_TABLE, text, locale)
        if isinstance(entry, dict):
            return Explained(
                code=text,
                label=str(entry["label"]),
                explanation=str(entry.get("explanation", "")),
                next_step=str(entry.get("next_step", "")),
                known=True,
            )
        generic = self._entry(ERROR_TABLE, "_unknown", locale) or {}
        return Explained(
            code=text,
            label=humanized(text),
            explanation=str(generic.get("explanation", "")),
            next_step=str(generic.get("next_step", "")),
            known=False,
        )

    def _missing(self, table: str, value: str) -> None:
        key = (table, value[:64])
        if key in self._logged or len(self._logged) >= _LOGGED_LIMIT:
            return
        self._logged.add(key)
        log.warning(
            "label_missing: no %s label for %r in templates/labels/; shown as %r",
            table,
            key[1],
            humanized(key[1]),
        )

    def filters(self) -> dict[str, Any]:
        """The `label` and `explain` filters, in the render's `locale`."""

        @jinja2.pass_context
        def label(context: jinja2.runtime.Context, value: Any, table: str) -> str:
            return self.label(value, table, context.get("locale", DEFAULT_LOCALE))

        @jinja2.pass_context
        def explain(context: jinja2.runtime.Context, code: Any) -> Explained:
            return self.explain(code, context.get("locale", DEFAULT_LOCALE))

        return {"label": label, "explain": explain}
