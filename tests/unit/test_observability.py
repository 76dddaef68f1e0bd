"""The pieces behind Herald's metrics and logs: error classes, the per-stage timer, an event's
accounting outcome, queue ages, and the log formatter's masking."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from herald.consumers.queue_stats import QueueAges, rejection_time
from herald.errors import (
    ConfigurationError,
    PermanentSendError,
    RejectedMessage,
    SmtpAuthenticationError,
    TransientError,
    TransientSendError,
    error_class,
    retry_reason,
)
from herald.ledger.store import LedgerUnavailable
from herald.senders.smtp import AmbiguousSendError
from herald.senders.webhook import TransientWebhookError
from herald.service.logs import JsonFormatter, mask
from herald.service.metrics import Metrics
from herald.workflow.pipeline import DeliveryBusy, DeliveryReport
from tests.support import sample_sum


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RejectedMessage("malformed_json", "x"), "rejected"),
        (SmtpAuthenticationError("535", 535), "auth"),
        (TransientSendError("451", 451), "transient"),
        (LedgerUnavailable("down"), "transient"),
        (PermanentSendError("550", 550), "permanent"),
        (ConfigurationError("bad"), "configuration"),
        (KeyError("bug"), "unexpected"),
    ],
)
def test_error_class(error: Exception, expected: str) -> None:
    assert error_class(error) == expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (TransientSendError("451 later", 451), "smtp_reply"),
        (TransientSendError("connection refused"), "smtp_connection"),
        (AmbiguousSendError("dropped in DATA"), "smtp_dropped_in_data"),
        (SmtpAuthenticationError("535", 535), "smtp_auth"),
        (LedgerUnavailable("down"), "ledger"),
        (DeliveryBusy("leased"), "busy"),
        (TransientWebhookError("503"), "webhook"),
        (TransientError("other"), "transient"),
        (RuntimeError("bug"), "unexpected"),
    ],
)
def test_retry_reason(error: Exception, expected: str) -> None:
    assert retry_reason(error) == expected


def test_stage_timer_counts_errors_by_class_and_reraises() -> None:
    metrics = Metrics()
    with metrics.stage("render"):
        pass
    with pytest.raises(TransientSendError), metrics.stage("send"):
        raise TransientSendError("451", 451)
    registry = metrics.registry
    assert sample_sum(registry, "herald_stage_duration_seconds_count", stage="render") == 1
    assert sample_sum(registry, "herald_stage_duration_seconds_count", stage="send") == 1
    assert sample_sum(registry, "herald_stage_errors_total", stage="send", error="transient") == 1
    assert sample_sum(registry, "herald_stage_errors_total", stage="render") == 0


def test_ledger_transactions_feed_the_ledger_stage() -> None:
    metrics = Metrics()
    metrics.ledger_transaction(0.002, None)
    metrics.ledger_transaction(0.5, LedgerUnavailable("down"))
    registry = metrics.registry
    assert sample_sum(registry, "herald_stage_duration_seconds_count", stage="ledger") == 2
    assert sample_sum(registry, "herald_stage_errors_total", stage="ledger") == 1


def test_requeued_deliveries_are_consume_errors() -> None:
    metrics = Metrics()
    metrics.accounted("orders", "sent")
    metrics.accounted("orders", "requeued")
    assert sample_sum(metrics.registry, "herald_stage_errors_total", stage="consume") == 1


def test_scheduler_lag_grows_from_the_last_pass() -> None:
    metrics = Metrics()
    assert sample_sum(metrics.registry, "herald_scheduler_lag_seconds") == 0
    metrics.scheduler_passed()
    metrics._scheduler_passed_at = time.time() - 90
    lag = sample_sum(metrics.registry, "herald_scheduler_lag_seconds")
    assert 89 < lag < 100


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([], "no_recipients"),
        (["no_recipients"], "no_recipients"),
        (["suppressed", "suppressed"], "suppressed"),
        (["suppressed", "sent"], "sent"),
        (["sent", "failed", "suppressed"], "failed"),
    ],
)
def test_an_event_outcome_follows_its_notifications(outcomes: list[str], expected: str) -> None:
    assert DeliveryReport([], outcomes).event_outcome() == expected


def test_domain_queue_age_is_bounded_by_the_last_message_taken() -> None:
    ages = QueueAges()
    assert ages.domain_age("orders", 0) == 0
    # Nothing taken yet: the time the queue has been seen non-empty, growing from 0
    first = ages.domain_age("orders", 5)
    assert 0 <= first < 1
    ages.nonempty_since["orders"] -= 30
    assert 29 < ages.domain_age("orders", 5) < 31
    # Once a message is taken, its publish time bounds the head's age
    ages.taken("orders", datetime.now(UTC) - timedelta(seconds=120))
    assert 119 < ages.domain_age("orders", 5) < 121
    # No publish timestamp: the time it was taken
    ages.taken("orders", None)
    assert ages.domain_age("orders", 5) < 1
    assert ages.domain_age("orders", 0) == 0
    assert "orders" not in ages.nonempty_since


def test_rejection_time_sources() -> None:
    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert rejection_time({"x-rejected-at": at.isoformat()}, None) == at
    assert rejection_time({"x-rejected-at": at.isoformat().encode()}, None) == at
    died = datetime(2026, 12, 1, 9, 0)  # the broker's x-death time has no zone
    broker_dead = {"x-death": [{"reason": "delivery_limit", "time": died}]}
    assert rejection_time(broker_dead, None) == died.replace(tzinfo=UTC)
    assert rejection_time({}, at) == at
    assert rejection_time({"x-rejected-at": "not a time"}, None) is None
    assert rejection_time({}, None) is None


def test_mask_hides_addresses_and_urls() -> None:
    text = "to sara.holm+x@bluepeak.example via https://portal.example/sign?t=secret ok"
    assert mask(text) == "to <address> via <url> ok"
    assert mask("evt-123 orders.order.placed org-1204") == "evt-123 orders.order.placed org-1204"


def test_json_formatter_writes_one_parseable_object_with_fields_masked() -> None:
    record = logging.makeLogRecord(
        {
            "name": "herald.workflow.pipeline",
            "levelno": logging.WARNING,
            "levelname": "WARNING",
            "msg": "refused for %s",
            "args": ("a@b.example",),
            "event_id": "evt-1",
            "notification": "order_placed",
            "outcome": "failed",
            "duration_ms": 1.5,
            "detail": 'quoted "https://x.example/a" and c@d.example',
        }
    )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert entry["message"] == "refused for <address>"
    assert entry["detail"] == 'quoted "<url>" and <address>'
    assert (entry["event_id"], entry["notification"], entry["outcome"]) == (
        "evt-1",
        "order_placed",
        "failed",
    )
    assert entry["duration_ms"] == 1.5
    assert entry["time"].endswith("+00:00")
