"""Recipient locales: the template fallback chain (`de-AT` -> `de` -> `en`) and the Babel locale
that formats dates, numbers and money for a recipient (NOTIFICATIONS.md 3.4 rule 4)."""

from __future__ import annotations

from functools import lru_cache

from babel import Locale, UnknownLocaleError

DEFAULT_LOCALE = "en"


@lru_cache(maxsize=256)
def canonical(tag: str) -> str:
    """BCP 47 casing: `DE_at` -> `de-AT`, `zh-hant-tw` -> `zh-Hant-TW`; an empty tag is `en`."""
    parts = [part for part in tag.replace("_", "-").split("-") if part]
    if not parts:
        return DEFAULT_LOCALE
    fixed = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha():
            fixed.append(part.title())  # script
        elif len(part) in (2, 3):
            fixed.append(part.upper())  # region
        else:
            fixed.append(part.lower())  # variant
    return "-".join(fixed)


@lru_cache(maxsize=256)
def fallback_chain(tag: str) -> tuple[str, ...]:
    """The locales to look for templates in, most specific first, always ending with `en`:
    `de-AT` -> (`de-AT`, `de`, `en`)."""
    parts = canonical(tag).split("-")
    chain = ["-".join(parts[:length]) for length in range(len(parts), 0, -1)]
    if DEFAULT_LOCALE not in chain:
        chain.append(DEFAULT_LOCALE)
    return tuple(chain)


@lru_cache(maxsize=256)
def babel_locale(tag: str) -> Locale:
    """The most specific Babel locale of the chain that Babel knows; English at worst."""
    for candidate in fallback_chain(tag):
        try:
            return Locale.parse(candidate, sep="-")
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse(DEFAULT_LOCALE)
