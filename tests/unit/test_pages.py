"""The pages' language choice and colour contrast (`renderers/pages.py`), and that every page
template of every locale compiles and renders with StrictUndefined."""

from __future__ import annotations

import pytest

from herald.renderers.branding import DEFAULT_PRIMARY_COLOUR, BrandConfig
from herald.renderers.pages import (
    PAGE_LOCALES,
    PAGES,
    PageRenderer,
    choose_locale,
    contrast_ratio,
    page_brand,
    readable_colour,
)
from herald.service.unsubscribe_pages import ListState


@pytest.mark.parametrize(
    ("query", "accept", "expected"),
    [
        (None, None, "en"),
        (None, "de-DE,de;q=0.9,en;q=0.8", "de"),
        (None, "en-GB, de;q=0.9", "en"),
        (None, "fr, de-AT;q=0.5", "de"),
        (None, "fr, it", "en"),
        (None, "de;q=0", "en"),
        (None, "de;q=abc, en;q=0.1", "en"),
        ("de", "en", "de"),
        ("en", "de", "en"),
        ("fr", "de", "de"),
    ],
)
def test_choose_locale(query: str | None, accept: str | None, expected: str) -> None:
    assert choose_locale(query, accept) == expected


def test_contrast() -> None:
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21)
    assert contrast_ratio("#ffffff", "#ffffff") == pytest.approx(1)
    assert readable_colour("#0a5c44") == "#0a5c44"
    assert readable_colour("#ffe066") == DEFAULT_PRIMARY_COLOUR
    assert readable_colour("#777777") == DEFAULT_PRIMARY_COLOUR  # 4.48:1, just below
    assert contrast_ratio(DEFAULT_PRIMARY_COLOUR, "#ffffff") >= 4.5


@pytest.mark.parametrize("locale", PAGE_LOCALES)
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(locale: str, page: str) -> None:
    html = PageRenderer().render(
        page,
        locale,
        page_brand(BrandConfig(), "org-1"),
        "nonce123",
        category="renewals",
        preferences_path="../preferences/t",
        lists=[ListState("renewals", True), ListState("orders", False)],
    )
    assert f'<html lang="{locale}">' in html
    assert "<main>" in html and "<h1>" in html
    assert '<style nonce="nonce123">' in html
