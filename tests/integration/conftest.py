"""A running Herald service against the real broker, ledger and SMTP server, plus a publisher
that behaves like an upstream service (persistent, publisher confirms)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from herald.consumers.topology import (
    DEAD_LETTER_QUEUE,
    DOMAINS,
    EVENTS_EXCHANGE,
    declare,
    queue_name,
)
from herald.service.app import Service, build_service
from herald.service.http import bound_port
from herald.service.settings import Settings
from tests.conftest import SmtpServer
from tests.support import sample_sum

pytestmark = pytest.mark.integration


@dataclass
class Broker:
    connection: AbstractRobustConnection
    channel: AbstractChannel

    async def publish(
        self,
        document: dict[str, Any] | bytes,
        *,
        routing_key: str | None = None,
        message_id: str | None = "from-document",
        content_type: str | None = "application/cloudevents+json",
        **properties: Any,
    ) -> None:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        if routing_key is None:
            assert isinstance(document, dict)
            routing_key = document["type"]
        if message_id == "from-document":
            message_id = document["id"] if isinstance(document, dict) else None
        exchange = await self.channel.get_exchange(EVENTS_EXCHANGE)
        await exchange.publish(
            aio_pika.Message(
                body=body,
                content_type=content_type,
                message_id=message_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                **properties,
            ),
            routing_key=routing_key,
            timeout=10,
        )

    async def dead_letter(
        self, message_id: str | None, timeout: float = 15
    ) -> AbstractIncomingMessage:
        """Take (and ack) the dead-lettered copy of `message_id` from herald.dead-letter."""
        queue = await self.channel.get_queue(DEAD_LETTER_QUEUE)
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            if message.message_id == message_id:
                return message
        raise AssertionError(f"no dead letter for message_id {message_id!r}")

    async def queue_depth(self, name: str) -> int:
        # The underlying channel: a robust channel's passive declare returns a cached result.
        underlay = await self.channel.get_underlay_channel()
        result = await underlay.queue_declare(name, passive=True)
        return int(result.message_count or 0)


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    connection = await aio_pika.connect_robust(
        amqp_url, client_properties={"connection_name": "herald-tests-publisher"}
    )
    channel = await connection.channel(publisher_confirms=True)
    await declare(channel)
    for domain in DOMAINS:
        await (await channel.get_queue(queue_name(domain))).purge()
    await (await channel.get_queue(DEAD_LETTER_QUEUE)).purge()
    yield Broker(connection, channel)
    await connection.close()


def service_settings(
    amqp_url: str, smtp_server: SmtpServer, tmp_path: Path, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "amqp_url": amqp_url,
        "smtp_host": smtp_server.host,
        "smtp_port": smtp_server.port,
        "smtp_from": "Herald <notifications@operator.example>",
        "smtp_retry_base_seconds": 0.01,
        "database_url": f"sqlite:///{tmp_path}/herald.db",
        "http_host": "127.0.0.1",
        "http_port": 0,
        "shutdown_grace_seconds": 5,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def service(
    amqp_url: str, smtp_server: SmtpServer, tmp_path: Path, broker: Broker
) -> AsyncIterator[Service]:
    herald = await build_service(service_settings(amqp_url, smtp_server, tmp_path))
    await herald.start()
    yield herald
    await herald.stop()


def http_port(service: Service) -> int:
    assert service.http is not None
    return bound_port(service.http)


def metric(service: Service, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    return sample_sum(service.metrics.registry, name, **labels)


async def wait_for_metric(
    service: Service, name: str, value: float, timeout: float = 15, **labels: str
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while metric(service, name, **labels) < value:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"{name}{labels} is {metric(service, name, **labels)}, expected {value}"
            )
        await asyncio.sleep(0.02)
