"""CSS inlining at render time (css-inline): the layout's stylesheet (`templates/layouts/
email.css`) is moved into `style` attributes, because many mail clients drop `<style>` blocks.
Media queries cannot be inlined and stay in one `<style>` for the clients that honour them.

The stylesheet is a `string.Template` with the brand's colours (`$primary`, `$on_primary`,
`$link`); one inliner is compiled per colour and reused.
"""

from __future__ import annotations

from functools import lru_cache
from string import Template

import css_inline

from herald.renderers.branding import Brand

_DARK_TEXT = "#111827"
_LIGHT_TEXT = "#ffffff"
_FALLBACK_LINK = "#1d4ed8"  # for a primary colour too light to read on white


class EmailStyles:
    def __init__(self, stylesheet: str) -> None:
        self._stylesheet = Template(stylesheet)
        self._inliner = lru_cache(maxsize=256)(self._compile)

    def inline(self, html: str, brand: Brand) -> str:
        inlined: str = self._inliner(brand.primary_colour).inline(html)
        return inlined

    def css(self, primary: str) -> str:
        """The stylesheet for one primary colour."""
        on_primary = readable_on(primary)
        link = primary if on_primary == _LIGHT_TEXT else _FALLBACK_LINK
        return self._stylesheet.substitute(primary=primary, on_primary=on_primary, link=link)

    def _compile(self, primary: str) -> css_inline.CSSInliner:
        return css_inline.CSSInliner(
            extra_css=self.css(primary),
            keep_at_rules=True,  # the media queries, in a <style> of their own
            load_remote_stylesheets=False,  # never fetch anything while rendering
        )


def readable_on(background: str) -> str:
    """White or near-black text, whichever contrasts more with `background` (WCAG 2 relative
    luminance), so a partner's light primary colour still gets legible button text."""
    red, green, blue = (int(background[index : index + 2], 16) / 255 for index in (1, 3, 5))

    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.03928 else ((channel + 0.055) / 1.055) ** 2.4

    luminance = 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)
    dark_luminance = 0.0137  # of _DARK_TEXT
    contrast_with_white = 1.05 / (luminance + 0.05)
    contrast_with_dark = (luminance + 0.05) / (dark_luminance + 0.05)
    return _LIGHT_TEXT if contrast_with_white >= contrast_with_dark else _DARK_TEXT
