"""The jinja2 environments and the per-locale template sets.

HTML is autoescaped, text and subjects are not; StrictUndefined for both. Templates are package
data (`herald/templates`, the repository's `templates/` folder), one folder per notification id
(`subject.txt`, `body.txt`, `body.html`, in English) with a subfolder per further locale
(`de/subject.txt`, ...), beside the shared `layouts/`. A recipient's locale picks the first set
of its fallback chain
(`de-AT` -> `de` -> `en`). Sets are compiled once and cached, each with a content hash (its
version, recorded in the ledger with every email); templates never come from event data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from herald.errors import ConfigurationError
from herald.renderers import formatting
from herald.renderers.labels import LABELS, Labels
from herald.renderers.locales import DEFAULT_LOCALE, canonical, fallback_chain

TEMPLATE_FILES = ("subject.txt", "body.txt", "body.html")
# Package data (herald/templates), found through importlib.resources: from a wheel as from the
# checkout, never by a path relative to this file.
DEFAULT_TEMPLATES_DIR = Path(str(resources.files("herald") / "templates"))
LAYOUTS = "layouts"
STYLESHEET = "layouts/email.css"


def _in_locale(format_value: Any) -> Any:
    """A filter formatting in the render's `locale` (set by `Templates.render`)."""

    @jinja2.pass_context
    def filter_(context: jinja2.runtime.Context, value: Any) -> str:
        result: str = format_value(value, context.get("locale", DEFAULT_LOCALE))
        return result

    return filter_


@jinja2.pass_context
def _is_recipient(context: jinja2.runtime.Context, person: Any) -> bool:
    """`{% if order.placed_by is recipient %}you{% else %}...`: whether `person` is the one this
    email goes to, so an email addresses its reader as "you" (compared by address)."""
    recipient = context.get("recipient")
    address = getattr(person, "email", None)
    return (
        recipient is not None
        and isinstance(address, str)
        and address.lower() == recipient.email.lower()
    )


def _environment(templates_dir: Path, autoescape: bool, labels: Labels) -> jinja2.Environment:
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
        date=_in_locale(formatting.format_date),
        datetime=_in_locale(formatting.format_datetime),
        money=_in_locale(formatting.format_money),
        number=_in_locale(formatting.format_number),
        humanize=formatting.humanize,
        **labels.filters(),
    )
    environment.tests["recipient"] = _is_recipient
    return environment


def _render(template: jinja2.Template, shared: dict[str, Any]) -> str:
    """`template.render(shared)` without copying `shared` (templates' own `set`s go to their
    render's local variables, never into `shared`)."""
    try:
        return "".join(template.root_render_func(template.new_context(shared, shared=True)))
    except Exception:
        template.environment.handle_exception()
        raise  # not reached: handle_exception re-raises with the template's traceback


@dataclass(frozen=True, slots=True)
class TemplateSet:
    """One notification's three templates in one locale."""

    notification: str
    locale: str  # the locale of the templates, e.g. `de` for a `de-AT` recipient
    version: str  # content hash of the three templates and the layouts
    subject: jinja2.Template
    text: jinja2.Template
    html: jinja2.Template


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str
    locale: str  # the templates' locale
    version: str


class Templates:
    """Both environments, the template sets per (notification, locale), and the start-up check
    that every notification has its three templates in every locale it ships."""

    def __init__(self, templates_dir: Path = DEFAULT_TEMPLATES_DIR) -> None:
        self.directory = templates_dir
        self.labels = Labels(templates_dir)
        self.html = _environment(templates_dir, autoescape=True, labels=self.labels)
        self.text = _environment(templates_dir, autoescape=False, labels=self.labels)
        self.stylesheet = (templates_dir / STYLESHEET).read_text("utf-8")
        shared = [*(templates_dir / LAYOUTS).rglob("*.*"), *(templates_dir / LABELS).glob("*.yaml")]
        self._layouts_digest = self._digest_of(sorted(shared))
        self._sets: dict[tuple[str, str], TemplateSet] = {}
        self._locales: dict[str, tuple[str, ...]] = {}

    def locales(self, notification: str) -> tuple[str, ...]:
        """The locales `notification` ships, English first: `("en", "de")`."""
        known = self._locales.get(notification)
        if known is None:
            folder = self.directory / notification
            others = (
                sorted(
                    child.name
                    for child in folder.iterdir()
                    if child.is_dir() and child.name == canonical(child.name)
                )
                if folder.is_dir()
                else []
            )
            known = self._locales[notification] = (DEFAULT_LOCALE, *others)
        return known

    def check(self, notification_ids: list[str]) -> None:
        """Compile every template of every shipped locale now, so a missing or broken one stops
        the start."""
        for notification in notification_ids:
            for locale in self.locales(notification):
                self.template_set(notification, locale)

    def template_set(self, notification: str, locale: str) -> TemplateSet:
        """The set for a recipient locale: the first locale of its fallback chain that
        `notification` ships."""
        cached = self._sets.get((notification, locale))
        if cached is not None:
            return cached
        shipped = self.locales(notification)
        chosen = next(candidate for candidate in fallback_chain(locale) if candidate in shipped)
        template_set = self._sets.get((notification, chosen)) or self._load(notification, chosen)
        self._sets[(notification, chosen)] = template_set
        if len(self._sets) < 10_000:  # recipient locales come from events: bound the cache
            self._sets[(notification, locale)] = template_set
        return template_set

    def render(self, notification: str, context: dict[str, Any], locale: str) -> Rendered:
        """Render (subject, text, html) for a recipient whose locale is `locale`. Dates and
        numbers follow the recipient's locale when its language is the templates' (`de-AT`
        with German templates), else the templates' locale (no German dates in English text)."""
        template_set = self.template_set(notification, locale)
        requested = canonical(locale)
        same_language = requested == template_set.locale or requested.startswith(
            template_set.locale + "-"
        )
        format_locale = requested if same_language else template_set.locale
        context["locale"] = format_locale  # for the filters, and <html lang>
        # One context shared by the three templates, the environment's globals in it once:
        # `Template.render` would copy it into a new dict per template.
        shared = {**self.html.globals, **context}
        return Rendered(
            subject=_render(template_set.subject, shared),
            text=_render(template_set.text, shared),
            html=_render(template_set.html, shared),
            locale=template_set.locale,
            version=template_set.version,
        )

    def _load(self, notification: str, locale: str) -> TemplateSet:
        folder = notification if locale == DEFAULT_LOCALE else f"{notification}/{locale}"
        compiled: list[jinja2.Template] = []
        for name in TEMPLATE_FILES:
            environment = self.html if name.endswith(".html") else self.text
            try:
                compiled.append(environment.get_template(f"{folder}/{name}"))
            except jinja2.TemplateNotFound as exc:
                raise ConfigurationError(
                    f"templates: {exc.name} is missing in {self.directory}"
                ) from None
            except jinja2.TemplateSyntaxError as exc:
                raise ConfigurationError(
                    f"templates: {exc.name or folder + '/' + name} line {exc.lineno}: {exc.message}"
                ) from None
        digest = self._digest_of([self.directory / folder / name for name in TEMPLATE_FILES])
        subject, text, html = compiled
        return TemplateSet(
            notification=notification,
            locale=locale,
            version=hashlib.sha256((digest + self._layouts_digest).encode()).hexdigest()[:16],
            subject=subject,
            text=text,
            html=html,
        )

    def _digest_of(self, paths: list[Path]) -> str:
        digest = hashlib.sha256()
        for path in paths:
            digest.update(str(path.relative_to(self.directory)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()
