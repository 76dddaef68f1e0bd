"""`herald gallery OUT_DIR`: every notification type, in each locale it ships, rendered from the
example events into a static site that needs no server: an index grouped by domain with each
subject and trigger, and a page per notification and locale with the HTML email in a sandboxed
iframe beside the text part, the headers, the render provenance and the `.eml`.

Branded as a partner, a type whose example event carries no partner is rendered with the
default brand, and its page says so. The site is written into a scratch folder beside OUT_DIR
and moved into place only once every page rendered: a failure (which names the notification
type) leaves OUT_DIR as it was."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2

from herald.catalog.describe import describe
from herald.catalog.spec import Catalog
from herald.consumers.topology import DOMAINS
from herald.errors import ConfigurationError
from herald.renderers.email import EmailRenderer
from herald.renderers.environment import Templates
from herald.tools.preview import (
    PreviewRequest,
    email_parts,
    example_for,
    partner_of,
    preview,
    preview_directory,
)

SITE_DIR = Path(str(resources.files("herald.tools") / "gallery_site"))
SHOWN_HEADERS = (
    "From",
    "Reply-To",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Content-Language",
    "Auto-Submitted",
    "X-Herald-Notification",
)
DEFAULT_BRAND_NOTE = "rendered with the default brand: this event carries no partner"


@dataclass(frozen=True, slots=True)
class GalleryPage:
    notification: str
    domain: str
    source: str
    trigger: str
    locale: str
    subject: str
    path: str  # relative to the site's root
    note: str | None = None  # how the rendering differs from what was asked (the brand)


def build_gallery(
    out_dir: Path,
    catalog: Catalog,
    templates: Templates,
    renderer: EmailRenderer,
    partner: str | None = None,
) -> list[GalleryPage]:
    """Write the site into `out_dir` (created; existing files of the same names replaced, and
    its `n/` folder as a whole), all or nothing. A notification that cannot be rendered stops
    it with a `ConfigurationError` naming the type and locale; an `OSError` (the folder cannot
    be written) propagates with its file name."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # mkdir, not mkdtemp: the site keeps the permissions the umask gives (mkdtemp's are 0700).
    staging = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:12]}.partial"
    staging.mkdir()
    try:
        pages = _write_site(staging, catalog, templates, renderer, partner)
        _move_into_place(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return pages


def _write_site(
    out_dir: Path,
    catalog: Catalog,
    templates: Templates,
    renderer: EmailRenderer,
    partner: str | None,
) -> list[GalleryPage]:
    site = jinja2.Environment(
        loader=jinja2.FileSystemLoader(SITE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    pages_dir = out_dir / "n"
    pages_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SITE_DIR / "gallery.css", out_dir / "gallery.css")
    descriptions = {row["id"]: row for row in describe(catalog)}
    directory = preview_directory() if partner is None else preview_directory(partner)
    pages: list[GalleryPage] = []
    for spec in catalog:
        row = descriptions[spec.id]
        trigger = row["trigger"] + (f" where {row['when']}" if row["when"] else "")
        locales = templates.locales(spec.id)
        locale = locales[0]
        try:
            document = example_for(spec, directory)
            branded, note = partner, None
            if partner is not None and partner_of(document) is None:
                branded, note = None, DEFAULT_BRAND_NOTE
            for locale in locales:
                request = PreviewRequest(locale=locale, partner=branded, document=document)
                email = preview(spec, request, renderer)[0]
                message, text, html = email_parts(email)
                stem = f"{spec.id}.{locale}"
                (pages_dir / f"{stem}.email.html").write_text(html, "utf-8")
                (pages_dir / f"{stem}.eml").write_bytes(email.content)
                page = GalleryPage(
                    notification=spec.id,
                    domain=spec.trigger.split(".", 1)[0],
                    source=row["source"],
                    trigger=trigger,
                    locale=locale,
                    subject=email.subject,
                    path=f"n/{stem}.html",
                    note=note,
                )
                (out_dir / page.path).write_text(
                    site.get_template("page.html").render(
                        root="../",
                        page=page,
                        email=email,
                        text=text,
                        headers=[
                            (name, str(message[name])) for name in SHOWN_HEADERS if message[name]
                        ],
                        recipients=row["recipients"],
                        locales=locales,
                    ),
                    "utf-8",
                )
                pages.append(page)
        except OSError:
            raise  # the folder, not the notification: it names its file
        except Exception as exc:  # any failure of one type names the type
            raise ConfigurationError(f"{spec.id} ({locale}) could not be rendered: {exc}") from exc
    by_domain = {domain: [page for page in pages if page.domain == domain] for domain in DOMAINS}
    (out_dir / "index.html").write_text(
        site.get_template("index.html").render(
            root="",
            by_domain=by_domain,
            notification_count=len(catalog),
            page_count=len(pages),
            partner=partner,
            default_branded=len({page.notification for page in pages if page.note}),
        ),
        "utf-8",
    )
    return pages


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Make the finished site in `staging` the site in `out_dir`: by a rename when `out_dir`
    does not exist, else entry by entry (pages first, the index last), keeping other files."""
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    for name in ("n", "gallery.css", "index.html"):
        source, target = staging / name, out_dir / name
        if not (source.is_dir() and target.is_dir()):
            source.replace(target)
            continue
        old = staging / f".old-{name}"
        target.rename(old)  # removed with the scratch folder
        try:
            source.rename(target)
        except OSError:
            old.rename(target)  # the previous pages stay
            raise
