"""The `catalog_changed` webhook (NOTIFICATIONS.md 6.3) against a real local HTTP server:
CloudEvent body, HMAC signature, retries on failure, no repeat after a 2xx."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from herald.errors import ConfigurationError
from herald.renderers.webhook import OutgoingWebhook
from herald.schemas.examples import load_example
from herald.senders.webhook import TransientWebhookError, WebhookSender, secret_variable
from herald.service.app import build_service
from tests.conftest import SmtpServer
from tests.integration.conftest import Broker, metric, service_settings, wait_for_metric
from tests.webhook_receiver import LoopbackClient, subscriber_config

pytestmark = pytest.mark.integration
SECRET = "s3cret-for-tests"


@dataclass
class HookServer:
    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # replies to give first; then 204

    async def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.requests) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
            await asyncio.sleep(0.02)


@pytest.fixture
async def hook_server(unused_tcp_port_factory: Callable[[], int]) -> AsyncIterator[HookServer]:
    port = unused_tcp_port_factory()
    server = HookServer(url=f"http://127.0.0.1:{port}/catalog")

    async def receive(request: web.Request) -> web.Response:
        server.requests.append((dict(request.headers), await request.read()))
        status = server.statuses.pop(0) if server.statuses else 204
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/catalog", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield server
    await runner.cleanup()


def verify(headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Signature-256"], expected)


def webhook(url: str) -> OutgoingWebhook:
    return OutgoingWebhook("catalog_changed", "k" * 64, url, "bluepeak-catalog", b'{"a":1}')


async def test_signed_post_is_sent_once_on_2xx(hook_server: HookServer) -> None:
    sender = WebhookSender({"bluepeak-catalog": SECRET.encode()}, retry_base_seconds=0.01)
    result = await sender.send(webhook(hook_server.url))
    await sender.close()
    assert result.code == 204
    ((headers, body),) = hook_server.requests
    assert body == b'{"a":1}'
    assert headers["Content-Type"] == "application/cloudevents+json"
    assert verify(headers, body)


async def test_5xx_is_retried_until_2xx(hook_server: HookServer) -> None:
    hook_server.statuses.extend([503, 500])
    sender = WebhookSender({"bluepeak-catalog": SECRET.encode()}, retry_base_seconds=0.01)
    await sender.send(webhook(hook_server.url))
    await sender.close()
    assert len(hook_server.requests) == 3


async def test_persistent_failure_is_transient_after_the_in_process_attempts(
    hook_server: HookServer,
) -> None:
    hook_server.statuses.extend([500, 503, 502, 500])
    sender = WebhookSender(
        {"bluepeak-catalog": SECRET.encode()}, retry_base_seconds=0.01, retry_attempts=3
    )
    with pytest.raises(TransientWebhookError):
        await sender.send(webhook(hook_server.url))
    await sender.close()
    assert len(hook_server.requests) == 3


def test_secret_variable_name() -> None:
    assert secret_variable("bluepeak-catalog") == "HERALD_WEBHOOK_SECRET_BLUEPEAK_CATALOG"


async def test_missing_secret_stops_the_start(
    amqp_url: str, smtp_server: SmtpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(secret_variable("bluepeak-catalog"), raising=False)
    settings = service_settings(
        amqp_url,
        smtp_server,
        tmp_path,
        config=subscriber_config(tmp_path, "https://hooks.example/x"),
    )
    with pytest.raises(ConfigurationError, match="HERALD_WEBHOOK_SECRET_BLUEPEAK_CATALOG"):
        await build_service(settings)


async def test_catalog_change_reaches_email_and_webhook_once(
    amqp_url: str,
    smtp_server: SmtpServer,
    tmp_path: Path,
    broker: Broker,
    hook_server: HookServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a partner subscribed to catalog changes by email and webhook
    monkeypatch.setenv(secret_variable("bluepeak-catalog"), SECRET)
    settings = service_settings(
        amqp_url, smtp_server, tmp_path, config=subscriber_config(tmp_path, hook_server.url)
    )
    herald = await build_service(settings)
    # The config demands https; the test server speaks http on loopback.
    herald.pipeline.webhook_sender._client = LoopbackClient()  # type: ignore[union-attr]
    hook_server.statuses.append(503)  # the first POST fails and is retried
    await herald.start()
    try:
        document = load_example("catalog.catalog.changed")
        assert document["data"]["partner"]["id"] == "org-2210"
        # When the event arrives twice (a publisher retransmit)
        await broker.publish(document)
        await wait_for_metric(herald, "herald_events_processed_total", 1, domain="catalog")
        await broker.publish(document)
        await wait_for_metric(herald, "herald_events_duplicate_total", 1, domain="catalog")
        # Then one email and one delivered webhook (after one retry), signed, CloudEvent body
        (email,) = await smtp_server.wait_for(1)
        assert email.recipients == ["catalog@bluepeak.example"]
        assert len(hook_server.requests) == 2
        headers, body = hook_server.requests[-1]
        assert verify(headers, body)
        cloud_event = json.loads(body)
        assert cloud_event["type"] == "notifications.catalog_changed"
        assert cloud_event["source"] == "/herald"
        assert cloud_event["time"] == document["time"]
        assert cloud_event["data"]["partner"] == {
            "id": "org-2210",
            "name": document["data"]["partner"]["name"],
        }
        assert len(cloud_event["data"]["changes"]) == len(document["data"]["changes"])
        assert "@" not in body.decode(), "no contact people in the webhook"
        assert (
            metric(herald, "herald_webhooks_total", notification="catalog_changed", outcome="sent")
            == 1
        )
    finally:
        await herald.stop()
