"""Wiring: build every stage from the settings, connect them, run until told to stop.

The only module that knows all the stages. Start-up fails fast on a bad setting, config file,
catalog entry or template, before touching the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from dataclasses import dataclass
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from herald import faultpoints
from herald.catalog.registry import load_catalog
from herald.catalog.spec import Catalog
from herald.consumers.amqp import ConsumerOptions, DomainConsumers
from herald.errors import SmtpAuthenticationError, TransientError
from herald.ledger.attempts import DeliveryAttempts
from herald.ledger.queue_marks import QueueMarks
from herald.ledger.schedules import ScheduleStore
from herald.ledger.store import SqlLedger
from herald.renderers.email import EmailRenderer
from herald.renderers.environment import Templates
from herald.renderers.unsubscribe_headers import UnsubscribeLinks
from herald.schemas.registry import EVENT_SCHEMAS
from herald.senders.base import Sender
from herald.senders.pace import PaceObserver
from herald.senders.smtp import SmtpOptions, SmtpSender
from herald.senders.webhook import WebhookObserver, WebhookSender, load_secrets
from herald.service.bounce_smtp import BounceListener, bounce_listener_for
from herald.service.http import bound_port, build_app, start_http
from herald.service.metrics import Metrics
from herald.service.public_http import public_app_for
from herald.service.settings import ConfigFile, Settings, load_config_file
from herald.service.startup import DevSink, StartupSummary, announce, summarize
from herald.workflow.pipeline import Pipeline
from herald.workflow.reminders import ReminderScheduler
from herald.workflow.thresholds import ThresholdAlerts

log = logging.getLogger(__name__)


def herald_version() -> str:
    try:
        return version("herald")
    except PackageNotFoundError:
        return "unknown"


@functools.cache
def build_catalog_and_templates() -> tuple[Catalog, Templates]:
    """Load and cross-check the catalog and its templates; raises ConfigurationError.

    Both are read-only once loaded, so one process builds them once (compiling every template
    takes about a second; the test suite builds a service per test)."""
    catalog = load_catalog()
    catalog.check_triggers(EVENT_SCHEMAS)
    templates = Templates()
    templates.check([spec.id for spec in catalog])
    return catalog, templates


def smtp_sender(settings: Settings, pace_observer: PaceObserver | None = None) -> SmtpSender:
    return SmtpSender(
        SmtpOptions(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
            timeout_seconds=settings.smtp_timeout_seconds,
            pool_size=settings.smtp_pool_size,
            retry_base_seconds=settings.smtp_retry_base_seconds,
            send_budget_seconds=settings.smtp_send_budget_seconds,
            max_rate=settings.smtp_max_rate,
        ),
        pace_observer=pace_observer,
        return_path=settings.return_path,
    )


def unsubscribe_links(settings: Settings) -> UnsubscribeLinks | None:
    """Unsubscribe links for optional mail (issue 19), or None when they are not configured
    (the settings hold both or neither of their two parts)."""
    tokens = settings.unsubscribe_tokens
    if settings.public_base_url is None or tokens is None:
        return None
    return UnsubscribeLinks(settings.public_base_url, tokens, settings.bounce_domain)


def webhook_sender_for(
    config: ConfigFile, observer: WebhookObserver | None = None
) -> WebhookSender | None:
    """A sender with every configured webhook's secret loaded, or None when none is configured.
    A missing or malformed secret stops the start."""
    names = [
        target.secret_name
        for categories in config.recipients.values()
        for entry in categories.values()
        for target in entry.webhooks
    ]
    return WebhookSender(load_secrets(names), observer=observer) if names else None


@dataclass
class Service:
    settings: Settings
    config: ConfigFile
    metrics: Metrics
    ledger: SqlLedger
    sender: Sender
    pipeline: Pipeline
    consumers: DomainConsumers
    reminders: ReminderScheduler
    queue_marks: QueueMarks
    http: web.AppRunner | None = None
    # The listener that faces the internet (HERALD_PUBLIC_HTTP_PORT): provider webhooks.
    public_app: web.Application | None = None
    public_http: web.AppRunner | None = None
    scheduler: asyncio.Task[None] | None = None
    auth_probe: asyncio.Task[None] | None = None
    queue_watch: asyncio.Task[None] | None = None
    ledger_watch: asyncio.Task[None] | None = None
    bounce_listener: BounceListener | None = None  # HERALD_BOUNCE_SMTP_PORT

    async def _queue_watch_loop(self) -> None:
        """Queue depth and consumers per Herald queue, for the dashboard and alerts."""
        while True:
            try:
                for name, stats in (await self.consumers.queue_stats()).items():
                    self.metrics.queue_messages.labels(name).set(stats.messages)
                    self.metrics.queue_consumers.labels(name).set(stats.consumers)
                    age = stats.oldest_age_seconds
                    if age is None:  # the dead-letter queue: since when, from the ledger
                        oldest = await self.queue_marks.observe(name, stats.messages)
                        now = self.ledger.now()
                        age = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
                    self.metrics.queue_oldest_age.labels(name).set(age)
            except Exception as exc:  # a passing broker fault; the next pass tries again
                log.warning("queue statistics unavailable", extra={"error": type(exc).__name__})
            await asyncio.sleep(self.settings.queue_watch_interval_seconds)

    def configuration_fault(self, error: Exception) -> None:
        """The mail server refused our credentials: pause consuming (the deliveries in hand go
        to the retry queues, never failed or dead-lettered) until a login succeeds."""
        self.metrics.smtp_auth_failures.inc()
        if self.auth_probe is None or self.auth_probe.done():
            self.auth_probe = asyncio.create_task(self._pause_until_smtp_accepts())

    async def _pause_until_smtp_accepts(self) -> None:
        log.error("SMTP authentication failed: consuming paused until a login succeeds")
        await self.consumers.pause("smtp_auth")
        while True:
            await asyncio.sleep(self.settings.smtp_auth_probe_seconds)
            try:
                await self.sender.check()
            except SmtpAuthenticationError:
                self.metrics.smtp_auth_failures.inc()
                continue
            except TransientError:
                continue
            break
        await self.consumers.resume("smtp_auth")
        log.warning("SMTP login accepted again: consuming resumed")

    async def _pause_while_ledger_down(self, interval_seconds: float = 1.0) -> None:
        """Stop taking deliveries while the ledger is unhealthy, so that messages wait in the
        broker untouched (not cycled through the retry queues), and take them again once it
        answers. A deleted SQLite file stays unhealthy until an operator restarts Herald."""
        paused = False
        while True:
            healthy = self.ledger.health.ok
            if paused and healthy:
                await self.consumers.resume("ledger")
                log.warning("ledger healthy again: consuming resumed")
            elif not paused and not healthy:
                log.error("ledger unavailable: consuming paused until it answers")
                await self.consumers.pause("ledger")
            paused = not healthy
            await asyncio.sleep(interval_seconds)

    @property
    def ready(self) -> bool:
        return self.consumers.ready and self.ledger.health.ok

    async def start(self) -> None:
        health = self.ledger.health
        self.metrics.ledger_up.set_function(lambda: 1.0 if health.ok else 0.0)
        # read at scrape time: a pause counts from the moment it is decided, not from when
        # its cancels have finished (readiness turns red at the first cancel)
        consumers = self.consumers
        self.metrics.consuming_paused.set_function(lambda: 1.0 if consumers.paused else 0.0)
        health.on_failed_check = lambda cause: self.metrics.ledger_errors.labels(cause).inc()
        self.ledger.start_health_watch()
        self.http = await start_http(
            build_app(
                self.metrics,
                lambda: self.consumers.ready,
                lambda: [] if health.problem is None else [health.problem],
            ),
            self.settings.http_host,
            self.settings.http_port,
        )
        if self.public_app is not None:
            self.public_http = await start_http(
                self.public_app,
                self.settings.public_http_host,
                self.settings.public_http_port or 0,
                "the public listener",
                "HERALD_PUBLIC_HTTP_PORT",
            )
        self.bounce_listener = await bounce_listener_for(self.settings, self.ledger, self.metrics)
        await self.consumers.start()
        self.scheduler = asyncio.create_task(self._scheduler_loop(), name="herald-scheduler")
        self.queue_watch = asyncio.create_task(self._queue_watch_loop(), name="herald-queues")
        self.ledger_watch = asyncio.create_task(
            self._pause_while_ledger_down(), name="herald-ledger-watch"
        )
        # `herald run` logs what it is connected to once started (service/startup.py).

    async def stop(self) -> None:
        log.info("herald stopping", extra={"grace_seconds": self.settings.shutdown_grace_seconds})
        if self.bounce_listener is not None:
            await self.bounce_listener.stop()
        for task in (self.auth_probe, self.queue_watch, self.ledger_watch):
            if task is not None:
                task.cancel()
        if self.public_http is not None:  # no new webhook writes while the ledger closes
            await self.public_http.cleanup()
        if self.scheduler is not None:
            self.scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.scheduler
        await self.consumers.stop(self.settings.shutdown_grace_seconds)
        await self.pipeline.close()
        await self.sender.close()
        if self.pipeline.webhook_sender is not None:
            await self.pipeline.webhook_sender.close()
        await self.ledger.close()
        if self.http is not None:
            await self.http.cleanup()
        log.info("herald stopped")

    async def _scheduler_loop(self) -> None:
        """Periodic work: send due reminders (NOTIFICATIONS.md 4) and forget duplicate keys past
        their retention. Safe with several replicas on one ledger."""
        retention = timedelta(days=self.settings.dedup_retention_days)
        while True:
            try:
                await self.reminders.run_pass(self.pipeline.deliver)
                self.metrics.scheduler_passed()
                purged = await self.ledger.purge_processed(retention)
                if purged:
                    log.info("purged processed-event keys", extra={"count": purged})
            except Exception:
                log.exception("scheduler pass failed")
            await asyncio.sleep(self.settings.scheduler_interval_seconds)


async def build_service(settings: Settings, sender: Sender | None = None) -> Service:
    config = load_config_file(settings.config)
    metrics = Metrics()
    webhook_sender = webhook_sender_for(config, metrics)
    catalog, templates = build_catalog_and_templates()
    metrics.build_info.info({"version": herald_version()})
    ledger = await SqlLedger.open(settings.database_url)
    ledger.observe = metrics.ledger_transaction
    schedules = ScheduleStore(ledger)
    reminders = ReminderScheduler(
        catalog=catalog,
        store=schedules,
        directory=config.recipients,
        schemas=EVENT_SCHEMAS,
        observer=metrics,
        send_time=config.reminders.send_time,
    )
    thresholds = ThresholdAlerts(
        catalog=catalog, store=schedules, directory=config.recipients, observer=metrics
    )
    if sender is None:
        metrics.smtp_rate_limit.set(settings.smtp_max_rate or 0.0)
        smtp = smtp_sender(settings, pace_observer=metrics)
        metrics.smtp_connections_in_use.set_function(lambda: smtp.in_use)
        sender = smtp
    pipeline = Pipeline(
        catalog=catalog,
        directory=config.recipients,
        renderer=EmailRenderer(
            templates, config.brand, settings.sender, unsubscribe_links(settings)
        ),
        sender=sender,
        ledger=ledger,
        observer=metrics,
        webhook_sender=webhook_sender,
        reminders=reminders,
        thresholds=thresholds,
    )
    consumers = DomainConsumers(
        ConsumerOptions(
            url=settings.amqp_url,
            prefetch=settings.prefetch,
            requeue_base_seconds=settings.requeue_base_seconds,
            retry_delays_ms=settings.retry_delays_ms,
            connect_attempts=settings.amqp_connect_attempts,
        ),
        handler=pipeline.handle,
        observer=metrics,
        attempts=DeliveryAttempts(ledger),
    )
    service = Service(
        settings=settings,
        config=config,
        metrics=metrics,
        ledger=ledger,
        sender=sender,
        pipeline=pipeline,
        consumers=consumers,
        reminders=reminders,
        queue_marks=QueueMarks(ledger),
        public_app=public_app_for(settings, config, ledger, metrics),
    )
    pipeline.on_configuration_fault = service.configuration_fault
    return service


def startup_summary(service: Service, dev_sink: DevSink | None = None) -> StartupSummary:
    """What a started service is connected to, with the ports it actually bound."""
    assert service.http is not None, "the service is started"
    return summarize(
        service.settings,
        http_port=bound_port(service.http),
        public_port=None if service.public_http is None else bound_port(service.public_http),
        bounce_port=None if service.bounce_listener is None else service.bounce_listener.port,
        dev_sink=dev_sink,
    )


async def run_until_signalled(
    settings: Settings, dev_sink: DevSink | None = None, plain_summary: bool = False
) -> None:
    """Run until SIGTERM or SIGINT. Once started, log the start-up summary (one JSON line) and,
    with `plain_summary`, print it as a block for a person too."""
    if faultpoints.armed():
        log.warning("fault injection armed", extra={"point": faultpoints.armed()})
    service = await build_service(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await service.start()
    except BaseException:
        # A start that fails half-way (broker unreachable, port in use) lets go of what it
        # took; the error then ends the command (service/failures.py).
        await service.stop()
        raise
    announce(startup_summary(service, dev_sink), plain=plain_summary)
    try:
        await stop.wait()
    finally:
        await service.stop()
