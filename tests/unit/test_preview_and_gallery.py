"""`herald preview` and `herald gallery`: what they write, and how they fail."""

from __future__ import annotations

import json
import re
import shutil
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from herald.errors import ConfigurationError
from herald.renderers.branding import BrandConfig
from herald.renderers.email import EmailRenderer
from herald.renderers.environment import DEFAULT_TEMPLATES_DIR, Templates
from herald.schemas.examples import load_example
from herald.service.cli import app
from herald.service.settings import Settings
from herald.tools.gallery import DEFAULT_BRAND_NOTE, GalleryPage, build_gallery
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


EXAMPLE_CONFIG = Path(__file__).parents[2] / "deploy" / "config" / "herald.example.yaml"


def test_a_partner_gallery_renders_partnerless_types_with_the_default_brand(
    tmp_path: Path,
) -> None:
    # Given the example config, which brands org-1204
    site = tmp_path / "site"
    result = RUNNER.invoke(
        app, ["gallery", str(site), "--partner", "org-1204", "--config", str(EXAMPLE_CONFIG)]
    )
    # Then every type is rendered
    assert result.exit_code == 0, result.output
    pages = sum(len(support.templates().locales(spec.id)) for spec in support.catalog())
    assert f"{pages} pages for 77 notification types" in result.stdout
    # as the partner where its event carries one
    branded = (site / "n" / "order_confirmation_new.en.html").read_text("utf-8")
    assert "brand <code>org-1204</code>" in branded and DEFAULT_BRAND_NOTE not in branded
    # and with the default brand, saying so, where it carries none
    plain = (site / "n" / "organization_status_changed.en.html").read_text("utf-8")
    assert "brand <code>default</code>" in plain
    assert f'<p class="note" id="note">{DEFAULT_BRAND_NOTE}</p>' in plain
    assert "organization_status_changed" in result.stderr
    assert "rendered with the default brand" in result.stderr
    index = (site / "index.html").read_text("utf-8")
    assert "whose events carry no partner, with the default brand" in index


def test_a_notification_that_fails_is_named_and_the_site_is_left_as_it_was(
    tmp_path: Path,
) -> None:
    # Given templates whose last notification type refers to a value no event has
    last = list(support.catalog())[-1].id
    folder = tmp_path / "templates"
    shutil.copytree(DEFAULT_TEMPLATES_DIR, folder)
    (folder / last / "subject.txt").write_text("{{ no_such_value }}\n", "utf-8")
    templates = Templates(folder)
    renderer = EmailRenderer(templates, BrandConfig(), Settings().sender)
    # and a site already there
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("the site of yesterday", "utf-8")
    # When the gallery is built, it fails naming the type
    with pytest.raises(ConfigurationError, match=f"^{last} \\(en\\) could not be rendered: "):
        build_gallery(site, support.catalog(), templates, renderer)
    # Then the site is as it was, and no scratch folder is left
    assert [path.name for path in site.iterdir()] == ["index.html"]
    assert (site / "index.html").read_text("utf-8") == "the site of yesterday"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["site", "templates"]


def test_a_gallery_rebuilt_in_place_replaces_its_pages_and_keeps_other_files(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    (site / "n").mkdir(parents=True)
    (site / "n" / "stale.en.html").write_text("a page of a removed type", "utf-8")
    (site / "README.txt").write_text("kept", "utf-8")
    pages = build_gallery(site, support.catalog(), support.templates(), support.renderer())
    assert (site / "README.txt").read_text("utf-8") == "kept"
    assert not (site / "n" / "stale.en.html").exists()
    assert all((site / page.path).is_file() for page in pages)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["site"]


def test_the_gallery_warns_of_a_partner_the_config_does_not_brand(tmp_path: Path) -> None:
    result = RUNNER.invoke(
        app,
        [
            "gallery",
            str(tmp_path / "site"),
            "--partner",
            "org-9999",
            "--config",
            str(EXAMPLE_CONFIG),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "herald: warning: partner 'org-9999' is not in the config's brand.partners "
        "(configured: org-1204): rendered with the default brand 'Cloud Portal'\n"
    ) in result.stderr
    page = (tmp_path / "site" / "n" / "order_confirmation_new.en.html").read_text("utf-8")
    assert "brand <code>default</code>" in page


@pytest.mark.parametrize(
    ("arguments", "warning"),
    [
        (
            ["preview", "plan_renewed", "--locale", "fr"],
            "locale 'fr' is not shipped for plan_renewed (it ships en, de): rendered in en",
        ),
        (
            ["preview", "order_confirmation_new", "--partner", "org-9999"],
            "partner 'org-9999' is not in the config's brand.partners (configured: none): "
            "rendered with the default brand 'Cloud Portal'",
        ),
        (["preview", "plan_renewed", "--locale", "de-AT"], None),  # German, dated as in Austria
    ],
)
def test_preview_warns_instead_of_falling_back_silently(
    arguments: list[str], warning: str | None
) -> None:
    result = RUNNER.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "Provenance: templates " in result.stdout
    said = [line for line in result.stderr.splitlines() if line.startswith("herald:")]
    assert said == ([] if warning is None else [f"herald: warning: {warning}"])
