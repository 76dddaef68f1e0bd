"""The jinja2 environments: HTML autoescaped, text and subjects not; StrictUndefined for both.

Templates live in the repository's `templates/` folder, one folder per notification id
(`subject.txt`, `body.txt`, `body.html`) beside the shared `layouts/`. They are compiled once and
cached; templates never come from event data.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from herald.errors import ConfigurationError
from renderers.formatting import format_date, format_datetime, format_money, humanize

TEMPLATE_FILES = ("subject.txt", "body.txt", "body.html")
DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


def _environment(templates_dir: Path, autoescape: bool) -> jinja2.Environment:
    # Text parts and subjects are not HTML: escaping them would corrupt them.
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        autoescape=autoescape,  # noqa: S701
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
        cache_size=-1,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    environment.filters.update(
        date=format_date, datetime=format_datetime, money=format_money, humanize=humanize
    )
    return environment


class Templates:
    """Both environments plus the check that every notification has its three templates."""

    def __init__(self, templates_dir: Path = DEFAULT_TEMPLATES_DIR) -> None:
        self.directory = templates_dir
        self.html = _environment(templates_dir, autoescape=True)
        self.text = _environment(templates_dir, autoescape=False)

    def check(self, notification_ids: list[str]) -> None:
        """Compile every template now, so a missing or broken one stops the start."""
        for notification in notification_ids:
            for name in TEMPLATE_FILES:
                environment = self.html if name.endswith(".html") else self.text
                try:
                    environment.get_template(f"{notification}/{name}")
                except jinja2.TemplateNotFound:
                    raise ConfigurationError(
                        f"templates: {notification}/{name} is missing in {self.directory}"
                    ) from None
                except jinja2.TemplateSyntaxError as exc:
                    raise ConfigurationError(
                        f"templates: {notification}/{name} line {exc.lineno}: {exc.message}"
                    ) from None

    def render(self, notification: str, context: dict[str, object]) -> tuple[str, str, str]:
        """Return (subject, text, html)."""
        subject = self.text.get_template(f"{notification}/subject.txt").render(context)
        text = self.text.get_template(f"{notification}/body.txt").render(context)
        html = self.html.get_template(f"{notification}/body.html").render(context)
        return subject, text, html
