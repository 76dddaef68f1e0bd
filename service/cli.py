"""The `herald` command line (typer): run, topology (declare, definitions), dev-smtp, catalog,
preview, gallery, schemas, reminders, publish-example, replay (dead letters), deliveries
(support) and suppressions.

An operator error of any command (a bad setting, the broker or ledger unreachable, a port in
use, an unusable output folder) ends in one line and its exit code (`service/failures.py`),
through the command group below rather than a handler per command.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import aio_pika
import typer
import uvloop
from rich.console import Console
from typer.core import TyperGroup

from herald.consumers.connection import connect_with_retry
from herald.consumers.topology import declare, definitions
from herald.errors import ConfigurationError
from herald.ledger.schedules import ReminderListing
from herald.schemas.examples import example_names
from herald.service.cli_output import check_format, fail, iso, print_json, warn
from herald.service.failures import operator_error, report
from herald.service.logs import configure_logging, plain_logging
from herald.service.output_dir import ensure_output_dir
from herald.service.replay_cli import deliveries_app, replay_app
from herald.service.settings import load_settings
from herald.service.suppressions_cli import suppressions_app
from herald.service.tables import Column, print_table
from herald.tools.devsmtp import start_dev_smtp
from herald.tools.publish import publish_examples

if TYPE_CHECKING:
    from herald.catalog.spec import Catalog
    from herald.renderers.branding import BrandConfig
    from herald.renderers.email import EmailRenderer
    from herald.renderers.environment import Templates


class HeraldCommands(TyperGroup):
    """The `herald` group: whatever command fails on an operator error ends in one line (a JSON
    record under `herald run`) and the error's exit code, never a traceback."""

    def invoke(self, ctx: Any) -> Any:  # click's Context (recent typer vendors click)
        plain_logging()  # `herald run` replaces it with JSON lines
        try:
            return super().invoke(ctx)
        except Exception as exc:
            error = operator_error(exc)
            if error is None:
                raise  # a bug: its traceback is what a developer needs
            raise typer.Exit(code=report(error)) from None


app = typer.Typer(
    help="Herald, the notification service.", no_args_is_help=True, cls=HeraldCommands
)
topology_app = typer.Typer(help="RabbitMQ topology.", no_args_is_help=True)
app.add_typer(topology_app, name="topology")
reminders_app = typer.Typer(help="Scheduled reminders.", no_args_is_help=True)
app.add_typer(reminders_app, name="reminders")
schemas_app = typer.Typer(
    help="The event contract as JSON Schema and AsyncAPI.", no_args_is_help=True
)
app.add_typer(schemas_app, name="schemas")
app.add_typer(replay_app, name="replay")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(suppressions_app, name="suppressions")
console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from herald.service.app import herald_version

        print(f"herald {herald_version()}")
        raise typer.Exit()


@app.callback()
def _herald(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print `herald <version>` and exit.",
        ),
    ] = False,
) -> None:
    """Herald, the notification service."""


@app.command()
def run(
    dev_smtp: Annotated[
        bool, typer.Option("--dev-smtp", help="Start a local SMTP sink writing .eml files.")
    ] = False,
    outbox: Annotated[Path, typer.Option(help="Where --dev-smtp writes messages.")] = Path(
        "outbox"
    ),
    dev_smtp_port: Annotated[int, typer.Option(help="Port of the --dev-smtp sink.")] = 8025,
) -> None:
    """Consume all five domains, run the scheduler and serve /metrics, /healthz, /readyz."""
    from herald.service.app import run_until_signalled
    from herald.service.startup import DevSink

    # JSON lines on stderr from the start: a typo'd variable's warning, a bad setting and the
    # error that stops the start are records too (HeraldCommands logs the last).
    configure_logging("INFO")
    controller = None
    sink = None
    if dev_smtp:
        controller = start_dev_smtp(outbox, port=dev_smtp_port, option="--dev-smtp-port")
        sink = DevSink("127.0.0.1", dev_smtp_port, outbox)
        os.environ["HERALD_SMTP_HOST"] = sink.host
        os.environ["HERALD_SMTP_PORT"] = str(dev_smtp_port)
    # Once started, the summary: a JSON line always, the plain block for a person.
    plain_summary = dev_smtp or sys.stderr.isatty()
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # libuv's loop
            runner.run(run_until_signalled(settings, sink, plain_summary))
    finally:
        if controller is not None:
            controller.stop()


@app.command("dev-smtp")
def dev_smtp_command(
    outbox: Annotated[Path, typer.Option(help="Where messages are written.")] = Path("outbox"),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8025,
) -> None:
    """Run only the development SMTP sink (writes each accepted message to OUTBOX/*.eml, its
    HTML part beside it, and OUTBOX/index.html listing them)."""
    controller = start_dev_smtp(outbox, port=port)
    console.print(
        f"dev SMTP sink on 127.0.0.1:{port}, writing to {outbox}/; "
        f"open {outbox}/index.html to read them (Ctrl-C to stop)",
        markup=False,
        highlight=False,
    )
    try:
        asyncio.run(_forever())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


async def _forever() -> None:
    await asyncio.Event().wait()


@topology_app.command("declare")
def topology_declare() -> None:
    """Declare exchanges, queues, bindings, DLX and DLQ exactly as EVENTS.md section 2."""
    asyncio.run(_declare(load_settings().amqp_url))


@topology_app.command("definitions")
def topology_definitions(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here instead of stdout")
    ] = None,
    vhost: Annotated[str, typer.Option(help="the virtual host the definitions name")] = "/",
) -> None:
    """Print the same topology in RabbitMQ's definitions format (deploy/rabbitmq/)."""
    text = json.dumps(definitions(vhost), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


@app.command("publish-example")
def publish_example(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="example events, e.g. orders.order.placed (see --list)"),
    ] = None,
    copies: Annotated[int, typer.Option(min=1, max=10_000, help="copies of each")] = 1,
    list_: Annotated[bool, typer.Option("--list", help="list the example events")] = False,
) -> None:
    """Publish the contract's example events to HERALD_AMQP_URL as upstream does (fresh id and
    time, persistent, confirmed)."""
    if list_ or not names:
        for name in example_names():
            print(name)
        return
    try:
        settings = load_settings()
        published = asyncio.run(publish_examples(settings.amqp_url, names, copies))
    except aio_pika.exceptions.DeliveryError:
        fail("the broker could not route the event: run `herald topology declare` first")
        return
    except (OSError, aio_pika.exceptions.AMQPError) as exc:
        fail(f"could not publish to the broker: {type(exc).__name__}: {exc}")
        return
    for item in published:
        print(f"published {item.event_type} {item.event_id}")


async def _declare(url: str) -> None:
    connection = await connect_with_retry(url, "herald-topology", attempts=5)
    async with connection:
        channel = await connection.channel()
        topology = await declare(channel)
    names = sorted([*(q.name for q in topology.queues.values()), topology.dead_letter_queue.name])
    console.print("declared: portal.events, herald.dlx, " + ", ".join(names))


@app.command("catalog")
def catalog_command(
    output_format: Annotated[
        str,
        typer.Option(
            "--format", help="table or json (one JSON document on stdout).", case_sensitive=False
        ),
    ] = "table",
) -> None:
    """Every notification type: id, source, trigger, recipients, channel."""
    from herald.catalog.describe import describe
    from herald.catalog.registry import load_catalog

    output_format = check_format(output_format)
    rows = describe(load_catalog())
    if output_format == "json":
        print_json(rows)
        return
    columns = (
        Column("id", whole=True),
        Column("source"),
        Column("trigger"),
        Column("recipients"),
        Column("channel"),
    )
    print_table(
        Console(),
        f"Herald notification catalog ({len(rows)} types)",
        columns,
        [
            (
                row["id"],
                row["source"],
                row["trigger"] + (f" where {row['when']}" if row["when"] else ""),
                ", ".join(row["recipients"]),
                ", ".join(row["channel"]),
            )
            for row in rows
        ],
    )


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Herald's config file (brands); default HERALD_CONFIG."),
]


def _renderer(
    config_path: Path | None,
) -> tuple[Catalog, Templates, EmailRenderer, BrandConfig]:
    """The catalog, templates and email renderer, branded from the config file, and the
    brands themselves."""
    from herald.renderers.email import EmailRenderer
    from herald.service.app import build_catalog_and_templates
    from herald.service.settings import load_config_file

    settings = load_settings()
    config = load_config_file(config_path or settings.config)
    catalog, templates = build_catalog_and_templates()
    renderer = EmailRenderer(templates, config.brand, settings.sender)
    return catalog, templates, renderer, config.brand


@app.command("preview")
def preview_command(
    notification: Annotated[str, typer.Argument(help="a notification id (see herald catalog)")],
    event: Annotated[
        Path | None, typer.Option(help="a CloudEvents JSON file; default: a shipped example")
    ] = None,
    locale: Annotated[str | None, typer.Option(help="every recipient's locale, e.g. de-AT")] = None,
    partner: Annotated[
        str | None, typer.Option(help="brand as this partner id (from brand.partners)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="write subject.txt, body.txt, body.html, message.eml here")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Render one notification without sending it: its subject, text and HTML, and the .eml.

    A --partner the config has no brand for, or a --locale whose language the notification
    has no templates in, is rendered anyway (default brand, fallback locale) with a warning."""
    from herald.tools.preview import (
        PreviewRequest,
        email_parts,
        find_spec,
        preview,
        unknown_partner,
        unshipped_locale,
    )

    try:
        document = None if event is None else json.loads(event.read_text("utf-8"))
        catalog, templates, renderer, brand = _renderer(config)
        spec = find_spec(catalog, notification)
        for warning in (
            unknown_partner(brand, partner),
            unshipped_locale(templates, spec.id, locale),
        ):
            if warning is not None:
                warn(warning)
        emails = preview(spec, PreviewRequest(locale, partner, document), renderer)
    except (OSError, ValueError) as exc:
        fail(f"cannot read the event: {exc}")
    except ConfigurationError as exc:
        fail(str(exc))
    email = emails[0]
    message, text, html = email_parts(email)
    if out is not None:
        ensure_output_dir(out)
        (out / "subject.txt").write_text(email.subject + "\n", "utf-8")
        (out / "body.txt").write_text(text, "utf-8")
        (out / "body.html").write_text(html, "utf-8")
        (out / "message.eml").write_bytes(email.content)
    for name in ("From", "Reply-To", "To", "Subject", "Content-Language"):
        if message[name]:
            print(f"{name}: {message[name]}")
    provenance = f"templates {email.template_version}, locale {email.locale}, brand {email.brand}"
    print(f"Provenance: {provenance}")
    print()
    print(text)
    others = len(emails) - 1
    if others:
        console.print(f"({others} more recipient(s) get the same notification)")
    if out is not None:
        console.print(f"wrote {out}/subject.txt, body.txt, body.html, message.eml")


@app.command("gallery")
def gallery_command(
    out_dir: Annotated[Path, typer.Argument(help="where to write the static site")],
    partner: Annotated[
        str | None,
        typer.Option(
            help="brand every email as this partner id (types whose event carries no partner "
            "keep the default brand, and their page says so)"
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Render every notification type, in each locale it ships, into a static site.

    The site is written only once every page rendered: a failure names the notification and
    leaves OUT_DIR as it was."""
    from herald.tools.gallery import build_gallery
    from herald.tools.preview import unknown_partner

    ensure_output_dir(out_dir)
    try:
        catalog, templates, renderer, brand = _renderer(config)
        warning = unknown_partner(brand, partner)
        if warning is not None:
            warn(warning)
        pages = build_gallery(out_dir, catalog, templates, renderer, partner)
    except ConfigurationError as exc:
        fail(f"gallery: {exc}; nothing was written to {out_dir}")
    default_branded = sorted({page.notification for page in pages if page.note})
    if default_branded:
        console.print(
            f"{len(default_branded)} types rendered with the default brand, their events "
            f"carrying no partner: {', '.join(default_branded)}",
            soft_wrap=True,
        )
    print(f"{len(pages)} pages for {len(catalog)} notification types: {out_dir / 'index.html'}")


@schemas_app.command("export")
def schemas_export(directory: Path) -> None:
    """Write one JSON Schema per event type and an AsyncAPI 3.0 document into DIRECTORY."""
    from herald.schemas.export import export
    from herald.schemas.registry import EVENT_SCHEMAS
    from herald.service.app import herald_version

    ensure_output_dir(directory)
    count = export(directory, EVENT_SCHEMAS, herald_version())
    console.print(f"wrote {count} event schemas and asyncapi.yaml to {directory}/")


@reminders_app.command("list")
def reminders_list(
    entity: Annotated[str | None, typer.Option("--entity", help="Only this entity id.")] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table or json (one JSON document on stdout).")
    ] = "table",
) -> None:
    """Pending, sent, cancelled and missed reminders, for support."""
    output_format = check_format(output_format)
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        fail(str(exc))
    rows = asyncio.run(_reminder_rows(settings.database_url, entity))
    if output_format == "json":
        print_json([asdict(row) for row in rows])
        return
    columns = (
        Column("entity", whole=True),
        Column("notification", whole=True),
        Column("cycle"),
        Column("offset"),
        Column("fire date", whole=True),
        Column("status"),
        Column("updated", whole=True),
    )
    print_table(
        Console(),
        f"Reminders ({len(rows)})",
        columns,
        [
            (
                f"{row.entity}={row.entity_id}",
                row.notification,
                row.cycle_key,
                f"{row.offset} d",
                iso(row.fire_date),
                row.status,
                iso(row.updated_at),
            )
            for row in rows
        ],
    )


async def _reminder_rows(database_url: str, entity: str | None) -> list[ReminderListing]:
    from herald.ledger.schedules import ScheduleStore
    from herald.ledger.store import SqlLedger

    ledger = await SqlLedger.open(database_url)
    try:
        return await ScheduleStore(ledger).listing(entity)
    finally:
        await ledger.close()


def main() -> None:  # pragma: no cover - console script entry
    sys.exit(app())
