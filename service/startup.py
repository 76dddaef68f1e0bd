"""The start-up summary of `herald run`: what it is connected to and what to do next.

Built from the real settings and the ports actually bound, and given once: as one JSON log line
(for operators and log search) and, for a person at a terminal or on `--dev-smtp`, as a short
plain block. Neither carries a password. The JSON line also carries no URL and no `user@host`
(the log rules, README "Metrics, dashboard, alerts, logs"): it names hosts as `host:port`.
"""

from __future__ import annotations

import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from herald.consumers.connection import BrokerAddress, broker_address
from herald.ledger.engine import LedgerLocation, ledger_location
from herald.service.settings import Settings

log = logging.getLogger(__name__)

# The example `publish-example` sends in the summary's next step: one order, three emails.
EXAMPLE_EVENT = "orders.order.placed"
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # noqa: S104 (names the bind-all addresses, binds none)


@dataclass(frozen=True, slots=True)
class DevSink:
    """The `--dev-smtp` sink `herald run` started beside the service."""

    host: str
    port: int
    outbox: Path


@dataclass(frozen=True, slots=True)
class StartupSummary:
    broker: BrokerAddress
    ledger: LedgerLocation
    smtp: str  # host:port
    http_listen: str  # host:port the metrics and probes listener is bound to
    metrics_url: str  # how to reach it from this machine
    public_listen: str | None
    bounce_listen: str | None
    dev_sink: DevSink | None
    publish_command: str
    # Set when the broker is not the default one: the command needs the same environment.
    publish_note: str | None = None

    def log_fields(self) -> dict[str, object]:
        """The JSON line's fields: `host:port` forms only, no URL, no password."""
        fields: dict[str, object] = {
            "http_port": int(self.http_listen.rsplit(":", 1)[1]),
            "broker": f"{self.broker.address} vhost {self.broker.vhost}",
            "ledger": f"{self.ledger.kind} {self.ledger.address}",
            "smtp": self.smtp,
            "metrics": _without_scheme(self.metrics_url),
            "publish_command": self.publish_command,
        }
        if self.public_listen is not None:
            fields["public_http"] = self.public_listen
        if self.bounce_listen is not None:
            fields["bounce_smtp"] = self.bounce_listen
        if self.dev_sink is not None:
            fields["outbox"] = f"{self.dev_sink.outbox}/"
        return fields

    def message(self) -> str:
        smtp = self.smtp
        if self.dev_sink is not None:
            smtp += f" (dev sink writing to {self.dev_sink.outbox}/)"
        text = (
            f"herald started: broker {self.broker.address} vhost {self.broker.vhost}, "
            f"ledger {self.ledger.kind} {self.ledger.address}, SMTP {smtp}, "
            f"metrics on {_without_scheme(self.metrics_url)}"
        )
        if self.public_listen is not None:
            text += f", public listener on {self.public_listen}"
        text += f"; publish an example: {self.publish_command}"
        if self.dev_sink is not None:
            text += f"; the emails appear in {self.dev_sink.outbox}/ (open index.html)"
        return text

    def plain(self) -> str:
        """The block for a person: what Herald is connected to, then what to do next."""
        scheme = "amqps" if self.broker.tls else "amqp"
        smtp = self.smtp
        if self.dev_sink is not None:
            smtp += f"  (dev sink writing to {self.dev_sink.outbox}/)"
        ledger = self.ledger.url() if self.ledger.kind == "PostgreSQL" else self.ledger.file
        lines = [
            "Herald is running.",
            f"  broker   {scheme}://{self.broker.user}@{self.broker.address} "
            f"(vhost {self.broker.vhost})",
            f"  ledger   {self.ledger.kind} {ledger}",
            f"  SMTP     {smtp}",
            f"  metrics  {self.metrics_url}  (also /healthz, /readyz)",
        ]
        if self.public_listen is not None:
            lines.append(f"  public   {self.public_listen}  (webhooks, unsubscribe pages)")
        if self.bounce_listen is not None:
            lines.append(f"  bounces  {self.bounce_listen}  (SMTP listener for reports)")
        lines += ["Next:", f"  publish an example:  {self.publish_command}"]
        if self.publish_note is not None:
            lines.append(f"                       ({self.publish_note})")
        if self.dev_sink is not None:
            outbox = self.dev_sink.outbox
            lines.append(f"  read what was sent:  {outbox}/index.html (and {outbox}/*.eml)")
        lines.append("  stop:                Ctrl-C")
        return "\n".join(lines) + "\n"


def herald_command(argv0: str, cwd: Path) -> str:
    """How to run `herald` again from the same folder: the bare name when the PATH finds this
    very executable, else its path (relative to the folder when it is inside, as `.venv/bin/herald`
    in a checkout)."""
    executable = Path(argv0).absolute()
    found = shutil.which("herald")
    if found is not None and Path(found).resolve() == executable.resolve():
        return "herald"
    try:
        return str(executable.relative_to(cwd.absolute()))
    except ValueError:
        return str(executable)


def summarize(
    settings: Settings,
    http_port: int,
    public_port: int | None = None,
    bounce_port: int | None = None,
    dev_sink: DevSink | None = None,
    argv0: str | None = None,
) -> StartupSummary:
    """The summary from the settings in effect and the ports bound (a configured 0 is
    resolved by then)."""
    http_host = settings.http_host
    reachable = "127.0.0.1" if http_host in _WILDCARD_HOSTS else http_host
    command = herald_command(argv0 or sys.argv[0], Path.cwd())
    default_broker = Settings.model_fields["amqp_url"].default
    return StartupSummary(
        broker=broker_address(settings.amqp_url),
        ledger=ledger_location(settings.database_url),
        smtp=f"{settings.smtp_host}:{settings.smtp_port}",
        http_listen=f"{_host(http_host)}:{http_port}",
        metrics_url=f"http://{_host(reachable)}:{http_port}/metrics",
        public_listen=(
            None if public_port is None else f"{_host(settings.public_http_host)}:{public_port}"
        ),
        bounce_listen=(
            None if bounce_port is None else f"{_host(settings.bounce_smtp_host)}:{bounce_port}"
        ),
        dev_sink=dev_sink,
        publish_command=f"{command} publish-example {EXAMPLE_EVENT}",
        publish_note=(
            None
            if settings.amqp_url == default_broker
            else "in a shell with the same HERALD_AMQP_URL"
        ),
    )


def announce(summary: StartupSummary, plain: bool) -> None:
    """Log the summary once as one JSON line; with `plain`, also print the block to stderr."""
    log.info(summary.message(), extra=summary.log_fields())
    if plain:
        sys.stderr.write(summary.plain())
        sys.stderr.flush()


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _without_scheme(url: str) -> str:
    return url.split("://", 1)[1]
