"""What SREs rely on, after one mixed run on the real broker and SMTP server (good events, a
duplicate, bad input, an unknown type, a 451 burst and a 550): the accounting identity holds per
domain, every metric the dashboard and alert rules use is exported, a real Prometheus scraping
the run shows data in the dashboard's panels and evaluates every rule, and neither `/metrics`
nor the logs carry an address, an entity id or a URL."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from herald.consumers.topology import DEAD_LETTER_QUEUE
from herald.schemas.examples import load_example
from herald.service.app import Service, build_service
from herald.service.logs import STANDARD_RECORD_FIELDS
from tests.conftest import SmtpServer
from tests.integration.conftest import (
    Broker,
    http_port,
    metric,
    service_settings,
    wait_for_metric,
)
from tests.integration.prometheus import Prometheus, prometheus_scraping
from tests.support import sample_names

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ACCOUNTED_OUTCOMES = (
    "sent",
    "blocked",
    "suppressed",
    "no_recipients",
    "failed",
    "dead_lettered",
    "ignored",
    "duplicate",
    "retrying",
    "requeued",
    "interrupted",
)
ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
URL = re.compile(r"https?://", re.IGNORECASE)


@dataclass
class MixedRun:
    service: Service
    exposition: str
    documents: list[dict[str, Any]]
    records: list[logging.LogRecord]
    prometheus: Prometheus


@pytest.fixture
async def mixed_run(
    amqp_url: str,
    smtp_server: SmtpServer,
    tmp_path: Path,
    broker: Broker,
    caplog: pytest.LogCaptureFixture,
    unused_tcp_port_factory: Callable[[], int],
) -> AsyncIterator[MixedRun]:
    caplog.set_level(logging.DEBUG)
    # Given a service whose first sends meet a burst of 451s longer than its in-process
    # retries, then one 550, scraped by a real Prometheus every second
    herald = await build_service(
        service_settings(
            amqp_url,
            smtp_server,
            tmp_path,
            retry_delays_ms=(200, 400),
            queue_watch_interval_seconds=0.2,
        )
    )
    async with AsyncExitStack() as stack:
        await herald.start()
        stack.push_async_callback(herald.stop)
        prometheus = await stack.enter_async_context(
            prometheus_scraping(
                f"127.0.0.1:{http_port(herald)}",
                tmp_path / "prometheus",
                unused_tcp_port_factory(),
            )
        )
        await prometheus.wait_for('up{job="herald"} == 1')
        # 30 > 4 deliveries x 6 in-process attempts: at least one goes through the retry queue
        smtp_server.scripted_replies.extend(["451 4.3.0 later"] * 30 + ["550 5.1.1 no such user"])
        documents = [
            load_example("orders.quote.created"),
            load_example("orders.quote.accepted"),
            load_example("users.user.invited"),
        ]
        for document in documents:
            await broker.publish(document)
        await broker.publish(documents[1])  # a publisher retransmit
        await broker.publish(b"not json", routing_key="orders.order.placed", message_id="bad-1")
        unknown = load_example("orders.quote.created")
        unknown.update(id="refund-1", type="orders.order.refunded")
        await broker.publish(unknown)
        # When every message has reached a final outcome (5 orders messages, 1 users)
        await _wait_until_final(herald, {"orders": 5, "users": 1})
        await wait_for_metric(
            herald, "herald_queue_messages", 1, queue=DEAD_LETTER_QUEUE
        )  # the queue watch has sampled the dead letter
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port(herald)}") as client:
            exposition = (await client.get("/metrics")).text
        yield MixedRun(herald, exposition, [*documents, unknown], list(caplog.records), prometheus)


FINAL_OUTCOMES = tuple(o for o in ACCOUNTED_OUTCOMES if o not in ("retrying", "requeued"))


async def _wait_until_final(herald: Service, expected: dict[str, int], timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout

    def final(domain: str) -> float:
        return sum(
            metric(herald, "herald_events_accounted_total", domain=domain, outcome=outcome)
            for outcome in FINAL_OUTCOMES
        )

    while any(final(domain) < count for domain, count in expected.items()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError({domain: final(domain) for domain in expected})
        await asyncio.sleep(0.05)


def check_accounting_identity_per_domain(mixed_run: MixedRun) -> None:
    herald = mixed_run.service
    for domain in ("orders", "users"):
        received = metric(herald, "herald_events_received_total", domain=domain)
        outcomes = {
            outcome: metric(herald, "herald_events_accounted_total", domain=domain, outcome=outcome)
            for outcome in ACCOUNTED_OUTCOMES
        }
        assert received == sum(outcomes.values()), (domain, received, outcomes)
    orders = {
        outcome: metric(herald, "herald_events_accounted_total", domain="orders", outcome=outcome)
        for outcome in ACCOUNTED_OUTCOMES
    }
    assert (orders["dead_lettered"], orders["ignored"]) == (1, 1)
    # The retransmit either found the event processed (duplicate) or, arriving between the
    # send's record and the event's, found its email sent (suppressed)
    assert orders["duplicate"] + orders["suppressed"] == 1
    assert orders["retrying"] >= 1  # the 451 burst outlasted the in-process retries
    # Every valid orders and users event ended as sent or failed (the 550 hit one of them)
    valid = sum(
        metric(herald, "herald_events_accounted_total", outcome=outcome)
        for outcome in ("sent", "failed")
    )
    assert valid == 3
    assert metric(herald, "herald_events_accounted_total", outcome="failed") == 1
    assert metric(herald, "herald_notifications_total", outcome="failed") == 1
    # Retries are counted by class (a retransmit arriving while the original is being sent
    # waits for its lease: busy), dead letters by domain and reason
    assert metric(herald, "herald_events_retried_total", reason="smtp_reply") >= 1
    assert metric(herald, "herald_events_retried_total") == sum(
        metric(herald, "herald_events_retried_total", reason=reason)
        for reason in ("smtp_reply", "busy")
    )
    assert (
        metric(
            herald, "herald_events_dead_lettered_total", domain="orders", reason="malformed_json"
        )
        == 1
    )


def check_stage_latency_and_queue_metrics(mixed_run: MixedRun) -> None:
    herald = mixed_run.service
    for stage in ("consume", "validate", "map", "render", "send", "ledger"):
        assert metric(herald, "herald_stage_duration_seconds_count", stage=stage) > 0, stage
    assert metric(herald, "herald_stage_errors_total", stage="validate", error="rejected") == 1
    assert metric(herald, "herald_stage_errors_total", stage="send", error="transient") >= 1
    assert metric(herald, "herald_stage_errors_total", stage="send", error="permanent") == 1
    # Every accepted email is timed from the event's time and from the broker's delivery
    sent = metric(herald, "herald_notifications_total", outcome="sent")
    assert sent >= 3
    assert metric(herald, "herald_event_to_accept_seconds_count") == sent
    assert metric(herald, "herald_delivery_to_accept_seconds_count") == sent
    # The dead letter is in the queue, seen with its age (from the ledger's mark)
    assert metric(herald, "herald_queue_oldest_message_age_seconds", queue=DEAD_LETTER_QUEUE) > 0
    assert metric(herald, "herald_queue_consumers", queue="herald.orders") == 1
    assert metric(herald, "herald_queue_consumers", queue=DEAD_LETTER_QUEUE) == 0
    assert metric(herald, "herald_build_info", version=_version()) == 1
    assert metric(herald, "process_start_time_seconds") > 0


async def check_the_queue_watch_leaves_dead_letters_alone(
    mixed_run: MixedRun, broker: Broker
) -> None:
    # The queue watch has sampled every 0.2 s; the dead letter is still there, unchanged
    # and never redelivered (nothing took it to peek).
    assert await broker.queue_depth(DEAD_LETTER_QUEUE) == 1
    copy = await broker.dead_letter("bad-1")
    assert copy.body == b"not json"
    assert not copy.redelivered and (copy.headers or {}).get("x-delivery-count", 0) == 0


def _version() -> str:
    from herald.service.app import herald_version

    return herald_version()


def _exported_names(exposition: str) -> set[str]:
    return sample_names(text_string_to_metric_families(exposition))


METRIC_NAME = re.compile(r"\b(?:herald_[a-z0-9_]+|process_[a-z0-9_]+)\b")


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((ROOT / "deploy/grafana/herald.json").read_text())
    expressions = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    expressions += [
        variable.get("query", {}).get("query", "")
        if isinstance(variable.get("query"), dict)
        else str(variable.get("query", ""))
        for variable in dashboard.get("templating", {}).get("list", [])
        if variable.get("type") == "query"
    ]
    return expressions


def rule_expressions() -> list[str]:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_dashboard_and_rules_reference_metrics_at_all() -> None:
    assert len(dashboard_expressions()) >= 20
    assert len(rule_expressions()) >= 10


def check_every_metric_of_the_dashboard_and_alerts_is_exported(mixed_run: MixedRun) -> None:
    exported = _exported_names(mixed_run.exposition)
    used = {
        name
        for expression in dashboard_expressions() + rule_expressions()
        for name in METRIC_NAME.findall(expression)
    }
    assert used, "no metric names found"
    assert used - exported == set()


# Panels whose series only exist once reminders, threshold alerts, requeues or webhook
# deliveries happened; the mixed run has none of those (and its retransmit ends as a duplicate
# or as suppressed, by timing). Their expressions must still evaluate without error.
MAY_BE_EMPTY = {
    "Duplicate events by domain",
    "Reminders per hour by outcome",
    "Threshold alerts per hour",
    "Requeued by domain",
    "Emails blocked by a suppression",
    "Webhook deliveries by outcome",
    "Webhook failures and retries by notification",
}
GRAFANA_VARIABLES = {"$instance": ".*", "$__rate_interval": "30s", "$__range": "5m"}


def _concrete(expression: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    return expression


async def check_every_panel_shows_data_in_prometheus(mixed_run: MixedRun) -> None:
    """Prometheus has scraped the final state; every panel query evaluates, and every panel
    but those of MAY_BE_EMPTY has data."""
    prometheus = mixed_run.prometheus
    await prometheus.wait_for('sum(herald_events_processed_total{job="herald"}) >= 3')
    await prometheus.wait_for('count_over_time(up{job="herald"}[1m]) >= 5')
    dashboard = json.loads((ROOT / "deploy/grafana/herald.json").read_text())
    empty = []
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    for panel in panels:
        results = [await prometheus.query(_concrete(target["expr"])) for target in panel["targets"]]
        if not any(results):
            empty.append(panel["title"])
    assert set(empty) <= MAY_BE_EMPTY, empty
    assert len(panels) - len(empty) >= 25
    instances = await prometheus.query("count by (instance) (herald_build_info)")
    assert len(instances) == 1  # the dashboard's instance variable has its value
    for expression in rule_expressions():  # the alert rules evaluate too
        await prometheus.query(expression)


def _entity_values(document: Any) -> set[str]:
    """The ids, addresses and URLs an event carries (not its envelope id)."""
    found: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if (
                isinstance(value, str) and (key == "id" or key.endswith("_id") or "@" in value)
            ) or (isinstance(value, str) and URL.match(value)):
                found.add(value)
            else:
                found |= _entity_values(value)
    elif isinstance(document, list):
        for item in document:
            found |= _entity_values(item)
    return found


def _raw_log_lines(records: list[logging.LogRecord]) -> list[str]:
    """Each record as callers wrote it: message, extra fields and traceback, before the
    formatter's safety net masks anything."""
    lines = []
    for record in records:
        fields = {
            key: value
            for key, value in vars(record).items()
            if key not in STANDARD_RECORD_FIELDS and not key.startswith("_")
        }
        text = json.dumps({"message": record.getMessage(), **fields}, default=str)
        if record.exc_text or record.exc_info:
            text += logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        lines.append(text)
    return lines


def check_no_address_entity_id_or_url_in_metrics_or_logs(mixed_run: MixedRun) -> None:
    secrets = set().union(*(_entity_values(doc["data"]) for doc in mixed_run.documents))
    assert any("@" in value for value in secrets) and any(
        value.startswith("org-") for value in secrets
    ), "the run's events carry addresses and ids to look for"
    event_ids = {doc["id"] for doc in mixed_run.documents}
    herald_lines = [
        line
        for line, record in zip(_raw_log_lines(mixed_run.records), mixed_run.records, strict=True)
        if record.name.split(".")[0] == "herald"
    ]
    assert any("notification settled" in line for line in herald_lines)
    for text, where in [(mixed_run.exposition, "/metrics"), *((ln, "log") for ln in herald_lines)]:
        assert not ADDRESS.search(text), (where, text[:500])
        assert not URL.search(text), (where, text[:500])
        leaked = {value for value in secrets if value in text}
        assert not leaked, (where, leaked, text[:500])
    leaked_ids = {event_id for event_id in event_ids if event_id in mixed_run.exposition}
    assert not leaked_ids


def check_log_lines_carry_the_structured_fields(mixed_run: MixedRun) -> None:
    settled = [r for r in mixed_run.records if r.getMessage() == "notification settled"]
    processed = [r for r in mixed_run.records if r.getMessage() == "event processed"]
    assert settled and processed
    for record in settled:
        for field in ("event_id", "event_type", "notification", "outcome", "duration_ms"):
            assert getattr(record, field, None) is not None, field
    assert {r.outcome for r in settled} >= {"sent", "failed"}
    assert {r.outcome for r in processed} <= set(ACCOUNTED_OUTCOMES)


async def test_a_mixed_run_is_fully_accounted_for_observable_and_clean(
    mixed_run: MixedRun, broker: Broker
) -> None:
    # One run (it takes seconds), several properties; each check names what failed.
    check_accounting_identity_per_domain(mixed_run)
    check_stage_latency_and_queue_metrics(mixed_run)
    check_no_address_entity_id_or_url_in_metrics_or_logs(mixed_run)
    check_log_lines_carry_the_structured_fields(mixed_run)
    await check_the_queue_watch_leaves_dead_letters_alone(mixed_run, broker)
    check_every_metric_of_the_dashboard_and_alerts_is_exported(mixed_run)
    await check_every_panel_shows_data_in_prometheus(mixed_run)
