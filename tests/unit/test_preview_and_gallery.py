"""`herald preview` and `herald gallery`: what they write, and how they fail."""

from __future__ import annotations

import json
import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from herald.schemas.examples import load_example
from herald.service.cli import app
from herald.tools.gallery import GalleryPage, build_gallery
from tests import support

RUNNER = CliRunner()


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[GalleryPage]]:
    out = tmp_path_factory.mktemp("gallery")
    pages = build_gallery(out, support.catalog(), support.templates(), support.renderer())
    return out, pages


def test_the_gallery_has_a_page_per_notification_and_shipped_locale(
    gallery: tuple[Path, list[GalleryPage]],
) -> None:
    out, pages = gallery
    expected = {
        (spec.id, locale)
        for spec in support.catalog()
        for locale in support.templates().locales(spec.id)
    }
    assert {(page.notification, page.locale) for page in pages} == expected
    assert len({page.notification for page in pages}) == 77
    assert sum(page.locale == "de" for page in pages) == 9
    for page in pages:
        stem = out / "n" / f"{page.notification}.{page.locale}"
        assert (out / page.path).is_file()
        html = stem.with_name(stem.name + ".email.html").read_text("utf-8")
        assert html.startswith("<!DOCTYPE html>") and f'lang="{page.locale}' in html
        eml = message_from_bytes(
            stem.with_name(stem.name + ".eml").read_bytes(), policy=policy.default
        )
        assert eml["X-Herald-Notification"] == page.notification
        assert str(eml["Subject"]) == page.subject


def test_the_index_lists_every_notification_grouped_by_domain(
    gallery: tuple[Path, list[GalleryPage]],
) -> None:
    out, pages = gallery
    index = (out / "index.html").read_text("utf-8")
    listed = re.findall(r'data-notification="([a-z0-9_]+)"', index)
    assert sorted(listed) == sorted(spec.id for spec in support.catalog())
    sections = re.findall(r'<section id="([a-z]+)">', index)
    assert sections == ["orders", "subscriptions", "users", "interop", "catalog"]
    for page in pages:  # the row sits in its domain's section, with its subject and trigger
        section = index.split(f'<section id="{page.domain}">', 1)[1].split("</section>", 1)[0]
        assert f'data-notification="{page.notification}"' in section
    first = next(page for page in pages if page.notification == "order_confirmation_new")
    assert "Order confirmation from Cloud Portal (new)" in index
    assert "orders.order.placed where order.storefront = partner_portal" in index
    assert f'href="{first.path}"' in index


def test_a_notification_page_shows_the_html_beside_the_text_and_the_headers(
    gallery: tuple[Path, list[GalleryPage]],
) -> None:
    out, _ = gallery
    page = (out / "n" / "order_confirmation_new.de.html").read_text("utf-8")
    assert '<iframe id="html-part" src="order_confirmation_new.de.email.html"' in page
    assert "sandbox=" in page  # the email's HTML cannot run scripts in the gallery
    assert '<pre id="text-part">Guten Tag Jonas Berg,' in page
    assert "<th>Content-Language</th><td>de</td>" in page
    assert 'href="order_confirmation_new.en.html"' in page  # the locale switcher
    assert "Auftragsbestätigung von Cloud Portal (neu)" in page


def test_event_text_is_escaped_in_the_gallery_pages(tmp_path: Path) -> None:
    document = load_example("orders.quote.change_requested")
    document["data"]["comment"] = "<script>alert(1)</script>"
    path = tmp_path / "event.json"
    path.write_text(json.dumps(document))
    result = RUNNER.invoke(
        app,
        ["preview", "quote_change_requested", "--event", str(path), "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == 0, result.output
    html = (tmp_path / "o" / "body.html").read_text("utf-8")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_preview_writes_subject_text_html_and_eml(tmp_path: Path) -> None:
    result = RUNNER.invoke(
        app, ["preview", "plan_renewed", "--locale", "de-AT", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    subject = (tmp_path / "subject.txt").read_text("utf-8")
    assert subject.startswith("Lizenzplan von ") and subject.endswith(" wurde verlängert\n")
    message = message_from_bytes((tmp_path / "message.eml").read_bytes(), policy=policy.default)
    assert str(message["Subject"]) + "\n" == subject
    assert message["Content-Language"] == "de"
    assert (tmp_path / "body.txt").read_text("utf-8").startswith("Guten Tag")
    assert '<html lang="de-AT">' in (tmp_path / "body.html").read_text("utf-8")
    assert "Provenance: templates " in result.output and "locale de, brand default" in result.output


def test_preview_brands_as_a_configured_partner(tmp_path: Path) -> None:
    config = tmp_path / "herald.yaml"
    config.write_text(
        "brand:\n  partners:\n    org-5555:\n      name: Acme Reseller\n"
        "      reply_to: help@acme.example\n      primary_colour: '#7c3aed'\n"
    )
    result = RUNNER.invoke(
        app,
        ["preview", "order_confirmation_new", "--partner", "org-5555", "--config", str(config)],
    )
    assert result.exit_code == 0, result.output
    assert "Subject: Order confirmation from Acme Reseller (new)" in result.output
    assert "Reply-To: Acme Reseller <help@acme.example>" in result.output
    assert "brand org-5555" in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["preview", "no_such_notification"], "unknown notification"),
        (["preview", "organization_status_changed", "--partner", "x"], "no partner"),
        (["preview", "order_placed", "--event", "{event}"], "does not trigger order_placed"),
        (["preview", "order_placed", "--event", "{missing}"], "cannot read the event"),
        (["preview", "order_placed", "--event", "{broken}"], "invalid (schema_violation)"),
    ],
)
def test_preview_explains_what_it_cannot_render(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(load_example("catalog.catalog.changed")))
    broken = tmp_path / "broken.json"
    document = load_example("orders.order.placed+marketplace")
    del document["data"]["order"]
    broken.write_text(json.dumps(document))
    paths = {"event": str(event), "missing": str(tmp_path / "nope.json"), "broken": str(broken)}
    result = RUNNER.invoke(app, [argument.format(**paths) for argument in arguments])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_gallery_command_writes_the_site(tmp_path: Path) -> None:
    result = RUNNER.invoke(app, ["gallery", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    pages = sum(len(support.templates().locales(spec.id)) for spec in support.catalog())
    assert f"{pages} pages for {len(support.catalog())} notification types" in result.output
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "gallery.css").is_file()
