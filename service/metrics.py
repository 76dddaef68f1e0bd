"""Every Prometheus metric Herald exports, on its own registry, and the observers that feed
them: `Metrics` implements the consumer's `ConsumerObserver` and the workflow's
`WorkflowObserver`, so neither room imports prometheus_client. Labels are low-cardinality
only: domain, stage, reason, notification, outcome; never ids, addresses or URLs."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector

from herald.catalog.config import CATEGORIES
from herald.consumers.topology import DOMAINS
from herald.errors import error_class
from herald.ledger.health import CAUSES as LEDGER_CAUSES

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, *LATENCY_BUCKETS)
ACCEPT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
# The stages of RED metrics: consume (a whole delivery, taken to settled), validate (decode),
# map (state update, catalog, recipients), render, send (SMTP or webhook), ledger (a transaction).
STAGES = ("consume", "validate", "map", "render", "send", "ledger")
ERROR_CLASSES = ("rejected", "transient", "permanent", "auth", "configuration", "unexpected")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._scheduler_passed_at: float | None = None
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.events_received = Counter(
            "herald_events_received",
            "Deliveries taken from a Herald queue.",
            ["domain"],
            registry=r,
        )
        ProcessCollector(registry=r)  # process_start_time_seconds, for restart-aware alerts
        self.broker_reconnects = Counter(
            "herald_broker_reconnects",
            "Times a domain's broker connection was lost and restored; a steady rise is a "
            "connection that keeps breaking.",
            ["domain"],
            registry=r,
        )
        self.events_dead_lettered = Counter(
            "herald_events_dead_lettered",
            "Messages copied to the dead-letter exchange, by reject reason.",
            ["domain", "reason"],
            registry=r,
        )
        self.events_ignored = Counter(
            "herald_events_ignored",
            "Valid events of a type the contract does not define (acked).",
            ["domain", "reason"],
            registry=r,
        )
        self.events_duplicate = Counter(
            "herald_events_duplicate",
            "Events whose (source, id) was already processed (acked, no effect).",
            ["domain"],
            registry=r,
        )
        self.events_requeued = Counter(
            "herald_events_requeued",
            "Deliveries requeued after a transient failure.",
            ["domain"],
            registry=r,
        )
        self.events_retried = Counter(
            "herald_events_retried",
            "Deliveries parked in a broker-side retry queue after a transient failure, by the "
            "failure's class.",
            ["domain", "reason"],
            registry=r,
        )
        self.events_accounted = Counter(
            "herald_events_accounted",
            "How each delivery taken ended, exactly once per delivery: sent, blocked, "
            "suppressed, no_recipients, failed (valid events, by their notifications' outcomes), "
            "dead_lettered, ignored, duplicate, retrying, requeued or interrupted. Summed over "
            "outcomes it equals herald_events_received_total once in-flight deliveries settle; "
            "a difference that persists is a gap.",
            ["domain", "outcome"],
            registry=r,
        )
        self.events_processed = Counter(
            "herald_events_processed",
            "Valid events whose every notification was sent, blocked, suppressed or recorded.",
            ["domain"],
            registry=r,
        )
        self.notifications = Counter(
            "herald_notifications",
            "Notification deliveries by outcome "
            "(sent, failed, blocked, suppressed, no_recipients, retrying).",
            ["domain", "notification", "outcome"],
            registry=r,
        )
        self.webhooks = Counter(
            "herald_webhooks",
            "Webhook deliveries by outcome (sent, suppressed, retrying, failed).",
            ["notification", "outcome"],
            registry=r,
        )
        self.webhook_attempts = Counter(
            "herald_webhook_attempts",
            "Webhook POST attempts by how each ended (status_class: 2xx; 4xx, permanent; 408, "
            "429, 5xx, 3xx, retried; timeout and connection, no answer). Never the URL.",
            ["notification", "status_class"],
            registry=r,
        )
        self.reminders = Counter(
            "herald_reminders",
            "Scheduled reminders by outcome (sent, cancelled, missed, stale).",
            ["notification", "outcome"],
            registry=r,
        )
        self.reminders_pending = Gauge(
            "herald_reminders_pending", "Reminders waiting for their fire date.", registry=r
        )
        self.threshold_alerts = Counter(
            "herald_threshold_alerts",
            "Teams usage threshold evaluations that fired (sent, suppressed) or were stale.",
            ["notification", "outcome"],
            registry=r,
        )
        self.event_to_accept = Histogram(
            "herald_event_to_accept_seconds",
            "From the event's `time` to the SMTP server's acceptance (event-triggered emails).",
            ["domain", "notification"],
            buckets=ACCEPT_BUCKETS,
            registry=r,
        )
        self.delivery_to_accept = Histogram(
            "herald_delivery_to_accept_seconds",
            "From the broker's delivery to Herald to the SMTP server's acceptance.",
            ["domain", "notification"],
            buckets=ACCEPT_BUCKETS,
            registry=r,
        )
        self.stage_duration = Histogram(
            "herald_stage_duration_seconds",
            "Duration of each pipeline stage (consume, validate, map, render, send, ledger).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.stage_errors = Counter(
            "herald_stage_errors",
            "Errors raised by each pipeline stage, by error class.",
            ["stage", "error"],
            registry=r,
        )
        self.smtp_connections_in_use = Gauge(
            "herald_smtp_connections_in_use", "Pooled SMTP connections sending now.", registry=r
        )
        self.scheduler_last_pass = Gauge(
            "herald_scheduler_last_pass_timestamp_seconds",
            "When the scheduler loop last completed a pass (lag = time() - this).",
            registry=r,
        )
        self.queue_messages = Gauge(
            "herald_queue_messages",
            "Messages ready in each Herald queue.",
            ["queue"],
            registry=r,
        )
        self.queue_oldest_age = Gauge(
            "herald_queue_oldest_message_age_seconds",
            "Age of the oldest ready message in each Herald queue, 0 when empty. Dead-letter "
            "queue: since when it has held messages without interruption (exact after any "
            "herald replay command, which reads every message). Domain queues: an upper bound, "
            "from the publish time of the last message Herald took (timestamp property, else "
            "when it was taken); while nothing is taken, how long the queue has been non-empty.",
            ["queue"],
            registry=r,
        )
        self.queue_consumers = Gauge(
            "herald_queue_consumers",
            "Consumers attached to each Herald queue.",
            ["queue"],
            registry=r,
        )
        self.scheduler_lag = Gauge(
            "herald_scheduler_lag_seconds",
            "Seconds since the scheduler loop last completed a pass (0 before the first).",
            registry=r,
        )
        self.scheduler_lag.set_function(self._scheduler_lag)
        self.event_processing = Histogram(
            "herald_event_processing_seconds",
            "Time from taking a delivery to settling it.",
            ["domain"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.smtp_auth_failures = Counter(
            "herald_smtp_auth_failures",
            "Times the mail server refused Herald's credentials (530/535).",
            registry=r,
        )
        self.smtp_rate_limit = Gauge(
            "herald_smtp_rate_limit",
            "Configured SMTP sends per second for this process (HERALD_SMTP_MAX_RATE; 0: "
            "unlimited).",
            registry=r,
        )
        self.smtp_rate_current = Gauge(
            "herald_smtp_rate_current",
            "SMTP sends per second allowed now, after throttling replies (0: unlimited).",
            registry=r,
        )
        self.smtp_throttled_replies = Counter(
            "herald_smtp_throttled",
            "Throttling replies from the SMTP relay (421, 451 4.7.x, 454 4.7.0, 'Throttling'), "
            "by reply code.",
            ["code"],
            registry=r,
        )
        self.smtp_token_wait = Histogram(
            "herald_smtp_token_wait_seconds",
            "Time a send waited for a token of the SMTP rate limit (sends that waited).",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=r,
        )
        self.feedback_reports = Counter(
            "herald_feedback_reports",
            "Bounce and complaint reports received after the 250, by source (dsn, arf, ses, "
            "sendgrid), outcome (recorded: a suppression or delivery status changed; repeat: "
            "verified but already known; ignored: verified but not a permanent bounce or a "
            "complaint; rejected: refused, changing nothing) and reason (why it was ignored or "
            "rejected, e.g. bad_signature, stale, too_large, bad_token, not_a_report).",
            ["source", "outcome", "reason"],
            registry=r,
        )
        self.unsubscribes = Counter(
            "herald_unsubscribes",
            "Unsubscribes that added a suppression, by category (NOTIFICATIONS.md 3.3) and "
            "source (one-click: a mail client's RFC 8058 POST; page: the unsubscribe or "
            "preferences page). A repeat is not counted; the CLI's changes are in its audit.",
            ["category", "source"],
            registry=r,
        )
        self.resubscribes = Counter(
            "herald_resubscribes",
            "Re-subscribes that removed an unsubscribe, by category and source (page).",
            ["category", "source"],
            registry=r,
        )
        self.unsubscribe_tokens_rejected = Counter(
            "herald_unsubscribe_token_rejected",
            "Unsubscribe or preferences links refused, by reason (malformed, unknown_key, "
            "invalid, expired); the page answered 400 and changed nothing.",
            ["reason"],
            registry=r,
        )
        self.consuming_paused = Gauge(
            "herald_consuming_paused",
            "1 while consuming is paused by a configuration fault (SMTP authentication).",
            registry=r,
        )
        self.ledger_up = Gauge(
            "herald_ledger_up",
            "1 while the ledger is usable: its SQLite file is the one opened, and its last "
            "transaction or probe succeeded; 0 while it fails (nothing is claimed or sent).",
            registry=r,
        )
        self.ledger_up.set(1)
        self.ledger_errors = Counter(
            "herald_ledger_errors",
            "Failed ledger health checks (one a second while failing), by cause: file_deleted, "
            "file_replaced (the SQLite file is not the one opened: fails closed until a "
            "restart), unavailable (the last transaction or probe failed).",
            ["error"],
            registry=r,
        )
        for cause in LEDGER_CAUSES:
            self.ledger_errors.labels(cause)
        self.consumers_ready = Gauge(
            "herald_consumers_ready",
            "1 while every domain queue has Herald's consumer attached.",
            registry=r,
        )
        self.build_info = Info("herald_build", "Herald's version.", registry=r)
        for domain in DOMAINS:  # export zeros so rates and ratios work from the first scrape
            self.events_received.labels(domain)
            self.events_processed.labels(domain)
            self.broker_reconnects.labels(domain)
            for outcome in ("sent", "dead_lettered", "retrying"):
                self.events_accounted.labels(domain, outcome)
        for stage in STAGES:
            self.stage_duration.labels(stage)
        self.stage_errors.labels("ledger", "transient")
        self.smtp_auth_failures.inc(0)
        for code in ("421", "451", "454"):
            self.smtp_throttled_replies.labels(code)
        for source in ("dsn", "arf", "ses", "sendgrid"):
            self.feedback_reports.labels(source, "recorded", "")
        for category in CATEGORIES:
            self.unsubscribes.labels(category, "one-click")
            self.unsubscribes.labels(category, "page")
            self.resubscribes.labels(category, "page")
        for reason in ("malformed", "unknown_key", "invalid", "expired"):
            self.unsubscribe_tokens_rejected.labels(reason)

    def _bound(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, looked up once per label set: the hot path settles several
        series per email, and every label value here comes from a small fixed set."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def feedback(self, source: str, outcome: str, reason: str = "") -> None:
        """A report after the 250 was handled (`herald_feedback_reports_total`)."""
        self._bound(self.feedback_reports, source, outcome, reason).inc()

    # SubscriptionObserver (service/unsubscribe_pages.py)
    def unsubscribed(self, category: str, source: str) -> None:
        self._bound(self.unsubscribes, category, source).inc()

    def resubscribed(self, category: str, source: str) -> None:
        self._bound(self.resubscribes, category, source).inc()

    def unsubscribe_token_rejected(self, reason: str) -> None:
        self._bound(self.unsubscribe_tokens_rejected, reason).inc()

    # PaceObserver (senders/pace.py)
    def smtp_rate_changed(self, rate: float) -> None:
        self.smtp_rate_current.set(rate)

    def smtp_throttled(self, code: int | None) -> None:
        self._bound(self.smtp_throttled_replies, str(code) if code is not None else "none").inc()

    def smtp_token_waited(self, seconds: float) -> None:
        self.smtp_token_wait.observe(seconds)

    def _scheduler_lag(self) -> float:
        last = self._scheduler_passed_at
        return 0.0 if last is None else max(0.0, time.time() - last)

    def scheduler_passed(self) -> None:
        self._scheduler_passed_at = time.time()
        self.scheduler_last_pass.set(self._scheduler_passed_at)

    def stage(self, name: str) -> AbstractContextManager[None]:
        """Time one run of a pipeline stage and count the error it raises, if any."""
        return _StageTimer(self, name)

    def stage_done(self, name: str, seconds: float, error: BaseException | None = None) -> None:
        """Record a stage timed elsewhere (the ledger's transactions)."""
        self._bound(self.stage_duration, name).observe(seconds)
        if error is not None:
            self._bound(self.stage_errors, name, error_class(error)).inc()

    def ledger_transaction(self, seconds: float, error: BaseException | None) -> None:
        self.stage_done("ledger", seconds, error)

    # WorkflowObserver (stage() above too) ----------------------------------------------------

    def ignored(self, domain: str, reason: str) -> None:
        self._bound(self.events_ignored, domain, reason).inc()

    def duplicate(self, domain: str) -> None:
        self._bound(self.events_duplicate, domain).inc()

    def event_processed(self, domain: str) -> None:
        self._bound(self.events_processed, domain).inc()

    def notification_settled(self, domain: str, notification: str, outcome: str) -> None:
        self._bound(self.notifications, domain, notification, outcome).inc()

    def webhook_settled(self, notification: str, outcome: str) -> None:
        self._bound(self.webhooks, notification, outcome).inc()

    # WebhookObserver (senders/webhook.py)
    def webhook_answered(self, notification: str, status_class: str) -> None:
        self._bound(self.webhook_attempts, notification, status_class).inc()

    def accepted(
        self,
        domain: str,
        notification: str,
        since_event: float | None,
        since_delivery: float | None,
    ) -> None:
        if since_event is not None:
            self._bound(self.event_to_accept, domain, notification).observe(since_event)
        if since_delivery is not None:
            self._bound(self.delivery_to_accept, domain, notification).observe(since_delivery)

    def reminder(self, notification: str, outcome: str) -> None:
        self._bound(self.reminders, notification, outcome).inc()

    def pending_reminders(self, count: int) -> None:
        self.reminders_pending.set(count)

    def threshold_alert(self, notification: str, outcome: str) -> None:
        self._bound(self.threshold_alerts, notification, outcome).inc()

    # ConsumerObserver -----------------------------------------------------------------------

    def received(self, domain: str) -> None:
        self._bound(self.events_received, domain).inc()

    def dead_lettered(self, domain: str, reason: str) -> None:
        self._bound(self.events_dead_lettered, domain, reason).inc()

    def requeued(self, domain: str) -> None:
        self._bound(self.events_requeued, domain).inc()

    def retried(self, domain: str, delay_ms: int, reason: str) -> None:
        self._bound(self.events_retried, domain, reason).inc()

    def accounted(self, domain: str, outcome: str) -> None:
        self._bound(self.events_accounted, domain, outcome).inc()
        if outcome == "requeued":  # an unexpected failure or an unconfirmed publish
            self._bound(self.stage_errors, "consume", "unexpected").inc()

    def handled(self, domain: str, seconds: float) -> None:
        self._bound(self.event_processing, domain).observe(seconds)
        self._bound(self.stage_duration, "consume").observe(seconds)

    def reconnected(self, domain: str) -> None:
        self._bound(self.broker_reconnects, domain).inc()


class _StageTimer:
    """`Metrics.stage` as a plain context manager: a generator-based one costs several
    microseconds per use, and each email passes through two stages."""

    __slots__ = ("_metrics", "_name", "_started")

    def __init__(self, metrics: Metrics, name: str) -> None:
        self._metrics = metrics
        self._name = name
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        metrics = self._metrics
        if isinstance(error, Exception):
            metrics._bound(metrics.stage_errors, self._name, error_class(error)).inc()
        metrics._bound(metrics.stage_duration, self._name).observe(
            time.perf_counter() - self._started
        )
