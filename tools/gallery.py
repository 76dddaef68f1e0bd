"""`herald gallery OUT_DIR`: every notification type, in each locale it ships, rendered from the
example events into a static site that needs no server: an index grouped by domain with each
subject and trigger, and a page per notification and locale with the HTML email in a sandboxed
iframe beside the text part, the headers, the render provenance and the `.eml`."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2

from herald.catalog.describe import describe
from herald.catalog.spec import Catalog
from herald.consumers.topology import DOMAINS
from herald.renderers.email import EmailRenderer
from herald.renderers.environment import Templates
from herald.tools.preview import PreviewRequest, email_parts, preview

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


@dataclass(frozen=True, slots=True)
class GalleryPage:
    notification: str
    domain: str
    source: str
    trigger: str
    locale: str
    subject: str
    path: str  # relative to the site's root


def build_gallery(
    out_dir: Path,
    catalog: Catalog,
    templates: Templates,
    renderer: EmailRenderer,
    partner: str | None = None,
) -> list[GalleryPage]:
    """Write the site into `out_dir` (created; existing files of the same names replaced)."""
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
    pages: list[GalleryPage] = []
    for spec in catalog:
        row = descriptions[spec.id]
        trigger = row["trigger"] + (f" where {row['when']}" if row["when"] else "")
        locales = templates.locales(spec.id)
        for locale in locales:
            email = preview(spec, PreviewRequest(locale=locale, partner=partner), renderer)[0]
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
            )
            (out_dir / page.path).write_text(
                site.get_template("page.html").render(
                    root="../",
                    page=page,
                    email=email,
                    text=text,
                    headers=[(name, str(message[name])) for name in SHOWN_HEADERS if message[name]],
                    recipients=row["recipients"],
                    locales=locales,
                ),
                "utf-8",
            )
            pages.append(page)
    by_domain = {domain: [page for page in pages if page.domain == domain] for domain in DOMAINS}
    (out_dir / "index.html").write_text(
        site.get_template("index.html").render(
            root="",
            by_domain=by_domain,
            notification_count=len(catalog),
            page_count=len(pages),
            partner=partner,
        ),
        "utf-8",
    )
    return pages
