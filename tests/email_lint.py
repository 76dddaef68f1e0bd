"""The email lint (issue 20): what a reader must never meet in a rendered email, as functions
that return the problems they find. `tests/unit/test_email_lint.py` runs it over every type,
every shipped locale and every example that triggers the type.

- no snake_case token outside URLs, addresses and labelled codes (`(code: payment_declined)`),
  and no raw or humanised enum value standing for a label (`Reason: other`, `(change quantity)`);
- no "Hello there";
- the reader's own name only in the salutation: an email to the actor says "you";
- a link in the body (before the signature), or the explicit "no action needed" sentence;
- a subject of at most 100 characters, and a preheader that is a sentence, not a code.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from herald.renderers.environment import DEFAULT_TEMPLATES_DIR

MAX_SUBJECT = 100
URL = re.compile(r"https?://\S+")
ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A code shown on purpose is labelled: "(code: payment_declined)", "(Code: in_provisioning)".
LABELLED_CODE = re.compile(
    r"\((?:[Cc]ode|[Ee]rror code|Fehlercode|Statuscode|[Ss]tatus code): [^)\s]+\)"
)
SNAKE = re.compile(r"(?<![\w-])[A-Za-z0-9]+(?:_[A-Za-z0-9]+)+(?![\w-])")
SIGNATURE = "\n--\n"
PREHEADER = re.compile(r'<div class="preheader"[^>]*>(.*?)</div>', re.S)
TAG = re.compile(r"<[^>]+>")
# Tables whose keys are not enum values a reader could meet raw.
_NOT_ENUMS = {"error_code", "phrase", "list_name", "service", "storefront"}


@cache
def _labels() -> dict[str, dict[str, dict[str, object]]]:
    folder = Path(DEFAULT_TEMPLATES_DIR) / "labels"
    tables: dict[str, dict[str, dict[str, object]]] = {}
    for path in sorted(folder.glob("*.yaml")):
        for name, entries in yaml.safe_load(path.read_text("utf-8")).items():
            tables.setdefault(path.name.split(".")[0], {}).setdefault(name, {}).update(entries)
    return tables


@cache
def no_action_sentences() -> tuple[str, ...]:
    return tuple(str(tables["phrase"]["no_action_needed"]) for tables in _labels().values())


@cache
def _enum_labels() -> dict[str, str]:
    """Enum values that have a label of their own, with their English label."""
    english = _labels()["en"]
    return {
        key: str(label)
        for table, entries in english.items()
        if table not in _NOT_ENUMS
        for key, label in entries.items()
        if str(label).lower() != key.replace("_", " ")
    }


@cache
def raw_enum_values() -> frozenset[str]:
    """Printed bare, these are a code."""
    return frozenset(_enum_labels())


@cache
def humanised_enum_values() -> frozenset[str]:
    """`change quantity` for `change_quantity`: a template that humanised the value instead of
    labelling it. Not when the label itself reads so (`Microsoft 365 domain`)."""
    return frozenset(
        key.replace("_", " ")
        for key, label in _enum_labels().items()
        if "_" in key and key.replace("_", " ").lower() not in label.lower()
    )


@dataclass(frozen=True, slots=True)
class Rendered:
    notification: str
    locale: str
    example: str
    recipient_name: str
    subject: str
    text: str
    html: str


def visible_text(markup: str) -> str:
    """The HTML's words as a reader sees them: no tags, no preheader, no head."""
    body = markup.split("<body", 1)[-1]
    body = PREHEADER.sub(" ", body)
    return html.unescape(TAG.sub(" ", body))


def _codes_in(text: str) -> list[str]:
    text = LABELLED_CODE.sub(" ", ADDRESS.sub(" ", URL.sub(" ", text)))
    return SNAKE.findall(text)


def _raw_enums_in(text: str) -> list[str]:
    found: list[str] = []
    raw = raw_enum_values()
    for line in text.splitlines():
        label, colon, value = line.strip().rpartition(": ")
        if colon and label and value.strip(" .") in raw:
            found.append(line.strip())
    for phrase in humanised_enum_values():
        if re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text):
            found.append(phrase)
    return found


def problems(email: Rendered) -> list[str]:
    found: list[str] = []
    body = email.text.replace("\r\n", "\n").split(SIGNATURE, 1)[0]  # the footer is not the body
    words = visible_text(email.html)
    for where, text in (("subject", email.subject), ("text", body), ("html", words)):
        codes = _codes_in(text)
        if codes:
            found.append(f"{where}: internal codes shown to the reader: {sorted(set(codes))}")
        enums = _raw_enums_in(text)
        if enums:
            found.append(f"{where}: enum values shown raw: {sorted(set(enums))}")
        if re.search(r"\bHello there\b|\bHallo zusammen\b", text):
            found.append(f'{where}: "Hello there"')
    if email.recipient_name:
        lines = body.strip().splitlines()
        rest = "\n".join(lines[1:])
        if email.recipient_name in rest or email.recipient_name in email.subject:
            found.append(
                f"text: names its reader {email.recipient_name!r} in the third person (say 'you')"
            )
    if not URL.search(body) and not any(s in body for s in no_action_sentences()):
        found.append("text: no link and no 'no action needed' sentence: what should the reader do?")
    if len(email.subject) > MAX_SUBJECT:
        found.append(f"subject: {len(email.subject)} characters (at most {MAX_SUBJECT})")
    preheader = PREHEADER.search(email.html)
    if preheader is None:
        found.append("html: no preheader")
    else:
        line = html.unescape(TAG.sub("", preheader.group(1))).strip(" \u2007\u034f")
        if _codes_in(line) or len(line.split()) < 3:
            found.append(f"preheader: not a sentence: {line!r}")
    return found
