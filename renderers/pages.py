"""The unsubscribe and preferences pages' HTML (issue 19): the language, the partner's branding
and the templates under `templates/pages/` (`layout.html`, and per locale `<locale>/*.html`).

The language is `?lang=en|de` when given, else the best of `Accept-Language` that Herald has
(English and German, as the emails), else English: a token carries no locale. The branding is
the partner's brand name and primary colour from the config file (`renderers/branding.py`),
the default brand's otherwise. A colour whose contrast with white is below WCAG's 4.5:1 (the
buttons and the header carry white text) is replaced by the default dark blue. Logos are left
out: the brand's logo is an https URL on another host, and the pages make no third-party
request.

HTML is autoescaped with StrictUndefined; every page template is compiled at start-up. The one
`<style>` element carries a per-response nonce that the Content-Security-Policy names; the
pages have no script.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from herald.renderers.branding import DEFAULT_PRIMARY_COLOUR, BrandConfig
from herald.renderers.environment import DEFAULT_TEMPLATES_DIR

PAGE_LOCALES = ("en", "de")
DEFAULT_PAGE_LOCALE = "en"
PAGES = ("unsubscribe", "unsubscribed", "preferences", "invalid", "unavailable")
MIN_CONTRAST = 4.5  # WCAG 2 AA for normal text
MAX_ACCEPT_LANGUAGE = 1000


def choose_locale(query_lang: str | None, accept_language: str | None) -> str:
    """`?lang=` if Herald has it, else the highest-weighted `Accept-Language` entry whose
    primary subtag Herald has (`de-AT` -> `de`), else English."""
    if query_lang in PAGE_LOCALES:
        return query_lang
    best, best_weight = DEFAULT_PAGE_LOCALE, 0.0
    for position, item in enumerate((accept_language or "")[:MAX_ACCEPT_LANGUAGE].split(",")):
        tag, _, params = item.strip().partition(";")
        weight = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip() == "q":
            try:
                weight = float(value)
            except ValueError:
                continue
        primary = tag.strip().split("-")[0].lower()
        # Equal weights: the earlier entry wins (a tiny tie-break by position).
        weight -= position * 1e-6
        if primary in PAGE_LOCALES and weight > best_weight and weight > 0:
            best, best_weight = primary, weight
    return best


def _luminance(colour: str) -> float:
    channels = [int(colour[index : index + 2], 16) / 255 for index in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2's contrast ratio of two `#rrggbb` colours (1 to 21)."""
    high, low = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def readable_colour(colour: str) -> str:
    """`colour` if white text on it has 4.5:1, else the default brand colour."""
    if contrast_ratio(colour, "#ffffff") >= MIN_CONTRAST:
        return colour
    return DEFAULT_PRIMARY_COLOUR


@dataclass(frozen=True, slots=True)
class PageBrand:
    """Whose page it is: `partner` is the partner brand's name (None for an unbranded
    partner: the pages then name the list only), `name` the name in the header."""

    name: str
    colour: str
    partner: str | None


def page_brand(config: BrandConfig, partner_id: str | None) -> PageBrand:
    branded = None if partner_id is None else config.partners.get(partner_id)
    if branded is None:
        return PageBrand(config.default, readable_colour(config.primary_colour), None)
    colour = branded.primary_colour or config.primary_colour
    return PageBrand(branded.name, readable_colour(colour), branded.name)


class PageRenderer:
    """Renders one page in one locale; every template is compiled when it is built."""

    def __init__(self, templates_dir: Path = DEFAULT_TEMPLATES_DIR) -> None:
        self._environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates_dir),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            auto_reload=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._templates = {
            (locale, page): self._environment.get_template(f"pages/{locale}/{page}.html")
            for locale in PAGE_LOCALES
            for page in PAGES
        }

    def render(self, page: str, locale: str, brand: PageBrand, nonce: str, **context: Any) -> str:
        template = self._templates[(locale, page)]
        return template.render(locale=locale, brand=brand, nonce=nonce, **context)
