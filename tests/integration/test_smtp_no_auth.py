"""SMTP credentials set, but the server offers no AUTH: a configuration fault like 530/535.
Consuming pauses, /readyz turns red, herald_smtp_auth_failures_total counts, and nothing is
sent, failed or dead-lettered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from herald.schemas.examples import load_example
from herald.service.app import Service, build_service
from tests.conftest import SmtpServer
from tests.integration.conftest import Broker, http_port, metric, service_settings, wait_for_metric

pytestmark = pytest.mark.integration


@pytest.fixture
async def service_with_credentials(
    amqp_url: str, smtp_server: SmtpServer, tmp_path: Path, broker: Broker
) -> AsyncIterator[Service]:
    settings = service_settings(
        amqp_url, smtp_server, tmp_path, smtp_username="herald", smtp_password="pw-123"
    )
    herald = await build_service(settings)
    await herald.start()
    yield herald
    await herald.stop()


async def test_no_auth_offered_pauses_consuming_and_fails_nothing(
    service_with_credentials: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    service = service_with_credentials
    document = load_example("orders.order.placed")
    document["id"] = "no-auth-1"
    await broker.publish(document)
    await wait_for_metric(service, "herald_smtp_auth_failures_total", 1)
    await wait_for_metric(service, "herald_consuming_paused", 1)
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            response = await client.get(f"http://127.0.0.1:{http_port(service)}/readyz")
            if response.status_code == 503:
                break
            await asyncio.sleep(0.05)
    assert response.status_code == 503
    assert smtp_server.received == []
    assert metric(service, "herald_notifications_total", outcome="failed") == 0
    assert metric(service, "herald_events_dead_lettered_total") == 0
    assert metric(service, "herald_events_retried_total", reason="smtp_connection") == 0
