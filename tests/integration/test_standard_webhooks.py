"""Webhooks as receivers expect them (NOTIFICATIONS.md 6.3, draft 2), end to end through the
real broker: every request verifies with the official Standard Webhooks library under one
`webhook-id` across retries; a 4xx other than 408 and 429 is recorded failed after one attempt;
408, 429 and 5xx are retried, and `Retry-After` picks how long (in process, or which of the
broker's retry queues)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from herald.consumers.topology import retry_queue_name
from herald.errors import PermanentWebhookError
from herald.ledger.records import DeliveryRecord
from herald.renderers.webhook import OutgoingWebhook
from herald.schemas.examples import load_example
from herald.senders.webhook import WebhookSender, secret_variable
from herald.service.app import Service, build_service
from tests.conftest import SmtpServer
from tests.integration.conftest import Broker, metric, service_settings, wait_for_metric
from tests.webhook_receiver import (
    SECRET_NAME,
    Answer,
    LoopbackClient,
    Received,
    Receiver,
    running_receiver,
    subscriber_config,
    x_signature_256_verifies,
)

pytestmark = pytest.mark.integration
HERALD = str(Path(sys.executable).parent / "herald")
# A secret in the standard's own form: receivers give it to `Webhook(...)` as configured.
STANDARD_SECRET = "whsec_" + base64.b64encode(b"herald-test-key-0123456789abcdef").decode()
PLAIN_SECRET = "s3cret-for-tests"


@pytest.fixture
async def receiver(unused_tcp_port_factory: Callable[[], int]) -> AsyncIterator[Receiver]:
    async with running_receiver(unused_tcp_port_factory(), STANDARD_SECRET) as running:
        yield running


@pytest.fixture
async def start_herald(
    amqp_url: str,
    smtp_server: SmtpServer,
    tmp_path: Path,
    broker: Broker,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Callable[..., Awaitable[Service]]]:
    """Starts Herald with the receiver configured as org-2210's catalog webhook; stops it
    after the test."""
    monkeypatch.setenv(secret_variable(SECRET_NAME), STANDARD_SECRET)
    started: list[Service] = []

    async def start(**overrides: Any) -> Service:
        settings = service_settings(
            amqp_url,
            smtp_server,
            tmp_path,
            config=subscriber_config(tmp_path, receiver.url),
            **overrides,
        )
        herald = await build_service(settings)
        sender = herald.pipeline.webhook_sender
        assert sender is not None
        sender._client = LoopbackClient()  # type: ignore[assignment]
        sender._retry_base_seconds = 0.01  # a short in-process backoff; Retry-After still rules
        await herald.start()
        started.append(herald)
        return herald

    yield start
    for herald in started:
        await herald.stop()


async def webhook_record(herald: Service, document: dict[str, Any]) -> DeliveryRecord:
    records = await herald.ledger.deliveries_of_event(document["source"], document["id"])
    (record,) = [record for record in records if record.channel == "webhook"]
    return record


async def wait_for_queue(broker: Broker, queue: str, depth: int, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while await broker.queue_depth(queue) != depth:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{queue} never held {depth} message(s)")
        await asyncio.sleep(0.03)


def same_id_everywhere(requests: list[Received]) -> str:
    """The one `webhook-id` of all the requests, which is also the CloudEvent's `id`."""
    ids = {request.headers.get("webhook-id") for request in requests}
    assert len(ids) == 1, ids
    (webhook_id,) = ids
    assert webhook_id is not None
    assert all(json.loads(request.body)["id"] == webhook_id for request in requests)
    return webhook_id


async def test_every_attempt_verifies_under_one_webhook_id_across_retries(
    start_herald: Callable[..., Awaitable[Service]],
    broker: Broker,
    receiver: Receiver,
    smtp_server: SmtpServer,
) -> None:
    # Given a receiver that answers 500 to the three in-process attempts, then 2xx
    receiver.answers.extend([Answer(500)] * 3)
    herald = await start_herald(retry_delays_ms=(200, 400))
    document = load_example("catalog.catalog.changed")
    # When the event arrives and the fourth attempt comes through the broker's retry queue
    await broker.publish(document)
    await wait_for_metric(herald, "herald_events_processed_total", 1, domain="catalog")
    # Then four requests, each verified by the standard library, all under one webhook-id
    requests = receiver.received
    assert len(requests) == 4
    assert metric(herald, "herald_events_retried_total", domain="catalog", reason="webhook") == 1
    assert [request.problem for request in requests] == [None] * 4
    webhook_id = same_id_everywhere(requests)
    # webhook-timestamp is each attempt's own Unix time, in whole seconds
    stamps = [int(request.headers["webhook-timestamp"]) for request in requests]
    assert stamps == sorted(stamps)
    assert abs(stamps[-1] - time.time()) < 30
    # X-Signature-256 is unchanged beside the new headers
    assert all(x_signature_256_verifies(STANDARD_SECRET.encode(), r) for r in requests)
    record = await webhook_record(herald, document)
    assert (record.status, record.message_id) == ("sent", webhook_id)
    assert metric(herald, "herald_webhook_attempts_total", status_class="5xx") == 3
    assert metric(herald, "herald_webhook_attempts_total", status_class="2xx") == 1
    assert metric(herald, "herald_webhooks_total", outcome="sent") == 1
    assert len(await smtp_server.wait_for(1)) == 1


async def test_a_4xx_is_recorded_failed_after_one_attempt(
    start_herald: Callable[..., Awaitable[Service]],
    broker: Broker,
    receiver: Receiver,
    smtp_server: SmtpServer,
) -> None:
    # Given a receiver that refuses the request with 400
    receiver.answers.append(Answer(400))
    herald = await start_herald(retry_delays_ms=(200, 400))
    document = load_example("catalog.catalog.changed")
    # When the event arrives
    await broker.publish(document)
    await wait_for_metric(herald, "herald_events_processed_total", 1, domain="catalog")
    await asyncio.sleep(1.0)  # longer than any retry delay: a retry would have come by now
    # Then exactly one attempt, recorded failed with the status, and the event done
    assert len(receiver.received) == 1
    record = await webhook_record(herald, document)
    assert (record.status, record.detail) == ("failed", "webhook answered 400")
    assert metric(herald, "herald_webhooks_total", outcome="failed") == 1
    assert metric(herald, "herald_events_retried_total", domain="catalog") == 0
    assert metric(herald, "herald_events_accounted_total", domain="catalog", outcome="failed") == 1
    assert metric(herald, "herald_webhook_attempts_total", status_class="4xx") == 1
    assert await broker.queue_depth("herald.dead-letter") == 0
    assert receiver.received[0].problem is None
    # The email of the same notification still went
    assert len(await smtp_server.wait_for(1)) == 1


async def test_408_and_429_are_retried(
    start_herald: Callable[..., Awaitable[Service]], broker: Broker, receiver: Receiver
) -> None:
    # Given a receiver that answers 408, then 429 (without Retry-After), then 2xx
    receiver.answers.extend([Answer(408), Answer(429)])
    herald = await start_herald(retry_delays_ms=(200, 400))
    document = load_example("catalog.catalog.changed")
    # When the event arrives
    await broker.publish(document)
    await wait_for_metric(herald, "herald_events_processed_total", 1, domain="catalog")
    # Then it was tried again after each, and delivered on the third attempt
    assert len(receiver.received) == 3
    assert (await webhook_record(herald, document)).status == "sent"
    for status_class in ("408", "429", "2xx"):
        assert metric(herald, "herald_webhook_attempts_total", status_class=status_class) == 1
    assert [request.problem for request in receiver.received] == [None] * 3
    same_id_everywhere(receiver.received)


async def test_a_short_retry_after_is_waited_in_process_then_picks_the_retry_queue(
    start_herald: Callable[..., Awaitable[Service]], broker: Broker, receiver: Receiver
) -> None:
    # Given a receiver that answers 429 with Retry-After: 1 three times (the in-process
    # attempts), and retry queues of 200 ms, 1.5 s and 3 s
    receiver.answers.extend([Answer(429, {"Retry-After": "1"})] * 3)
    herald = await start_herald(retry_delays_ms=(200, 1_500, 3_000))
    document = load_example("catalog.catalog.changed")
    # When the event arrives
    await broker.publish(document)
    # Then the event waits in the 1.5 s queue, the smallest that covers Retry-After (the first
    # retry would otherwise take the 200 ms one)
    await wait_for_queue(broker, retry_queue_name("catalog", 1_500), 1, timeout=8)
    assert await broker.queue_depth(retry_queue_name("catalog", 200)) == 0
    await wait_for_metric(herald, "herald_events_processed_total", 1, domain="catalog")
    at = [request.at for request in receiver.received]
    assert len(at) == 4
    # in process, each wait was at least the second asked for; through the broker, 1.5 s
    assert at[1] - at[0] >= 0.95 and at[2] - at[1] >= 0.95, at
    assert at[3] - at[2] >= 1.45, at
    assert [request.problem for request in receiver.received] == [None] * 4


async def test_a_long_retry_after_goes_to_the_broker_at_once_bounded_by_the_longest_queue(
    start_herald: Callable[..., Awaitable[Service]], broker: Broker, receiver: Receiver
) -> None:
    # Given a receiver that answers 503 with Retry-After as an HTTP-date a minute away
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    receiver.answers.append(Answer(503, {"Retry-After": later}))
    herald = await start_herald(retry_delays_ms=(200, 1_500, 3_000))
    document = load_example("catalog.catalog.changed")
    # When the event arrives
    await broker.publish(document)
    # Then no in-process retry: the event waits in the longest queue (no queue covers 60 s)
    await wait_for_queue(broker, retry_queue_name("catalog", 3_000), 1, timeout=5)
    assert len(receiver.received) == 1
    await wait_for_metric(herald, "herald_events_processed_total", 1, domain="catalog")
    first, second = (request.at for request in receiver.received)
    assert second - first >= 2.95
    assert (await webhook_record(herald, document)).status == "sent"


@pytest.mark.parametrize("status", [401, 403, 404, 410, 413, 422])
async def test_other_4xx_are_permanent_after_one_request(
    unused_tcp_port_factory: Callable[[], int], status: int
) -> None:
    async with running_receiver(unused_tcp_port_factory(), PLAIN_SECRET.encode()) as receiver:
        receiver.answers.append(Answer(status))
        sender = WebhookSender({SECRET_NAME: PLAIN_SECRET.encode()}, retry_base_seconds=0.01)
        with pytest.raises(PermanentWebhookError, match=f"webhook answered {status}"):
            await sender.send(_webhook(receiver.url))
        await sender.close()
        assert len(receiver.received) == 1


async def test_a_tampered_request_fails_the_standard_verification(
    unused_tcp_port_factory: Callable[[], int],
) -> None:
    # Given a plain (not whsec_) secret: the receiver gives the library its bytes
    async with running_receiver(unused_tcp_port_factory(), PLAIN_SECRET.encode()) as receiver:
        sender = WebhookSender({SECRET_NAME: PLAIN_SECRET.encode()}, retry_base_seconds=0.01)
        await sender.send(_webhook(receiver.url))
        await sender.close()
    # The genuine request verifies (positive control) ...
    ((headers, body, _, problem),) = [
        (r.headers, r.body, r.at, r.problem) for r in receiver.received
    ]
    assert problem is None
    webhook = Webhook(PLAIN_SECRET.encode())
    assert webhook.verify(body, headers) == {"a": 1}
    # ... and any change to the body, the id or the timestamp, or another key, does not
    stamp = str(int(headers["webhook-timestamp"]) + 1)
    for forged_body, forged_headers in [
        (b'{"a":2}', headers),
        (body + b" ", headers),
        (body, {**headers, "webhook-id": "another-delivery"}),
        (body, {**headers, "webhook-timestamp": stamp}),
    ]:
        with pytest.raises(WebhookVerificationError, match="No matching signature"):
            webhook.verify(forged_body, forged_headers)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(b"another-secret").verify(body, headers)


def _webhook(url: str) -> OutgoingWebhook:
    return OutgoingWebhook("catalog_changed", "k" * 64, url, SECRET_NAME, b'{"a":1}')


def test_a_malformed_standard_secret_stops_herald_run_in_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HERALD_CONFIG": str(subscriber_config(tmp_path, "https://hooks.example/catalog")),
        secret_variable(SECRET_NAME): "whsec_not*base64",
        "HERALD_DATABASE_URL": f"sqlite:///{tmp_path}/herald.db",
    }
    result = subprocess.run(
        [HERALD, "run"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 2
    # `herald run` logs JSON lines: the error is one record, the secret's value is not in it
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    record = json.loads(line)
    assert record["message"] == "HERALD_WEBHOOK_SECRET_BLUEPEAK_CATALOG: not base64 after whsec_"
    assert record["exit_code"] == 2
    assert "not*base64" not in line
