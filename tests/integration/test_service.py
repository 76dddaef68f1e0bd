"""The operator interface against the real broker and SMTP server: probes and metrics, the
topology, SMTP failure classes, the CLI commands and a graceful stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path

import aio_pika
import httpx
import pytest
from aiormq.exceptions import ChannelPreconditionFailed

from herald.consumers.topology import DOMAINS, queue_name
from herald.schemas.examples import load_example
from herald.service.app import Service, build_service
from tests.conftest import SmtpServer, start_smtp_server
from tests.integration.conftest import (
    Broker,
    http_port,
    metric,
    service_settings,
    wait_for_metric,
)

pytestmark = pytest.mark.integration
HERALD = str(Path(sys.executable).parent / "herald")


async def test_probes_and_metrics(
    service: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    await broker.publish(load_example("orders.quote.created"))
    await smtp_server.wait_for(1)
    await wait_for_metric(service, "herald_events_processed_total", 1, domain="orders")
    port = http_port(service)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        exposition = (await client.get("/metrics")).text
    for name in (
        "herald_events_received_total",
        "herald_notifications_total",
        'herald_stage_duration_seconds_count{stage="send"} 1.0',
        "herald_event_processing_seconds",
        "herald_consumers_ready 1.0",
        "herald_build_info",
        'herald_event_to_accept_seconds_count{domain="orders",notification="new_quote"} 1.0',
        'herald_stage_duration_seconds_count{stage="ledger"}',
        "herald_smtp_connections_in_use 0.0",
        'herald_events_accounted_total{domain="orders",outcome="sent"} 1.0',
    ):
        assert name in exposition
    assert service.metrics.registry.get_sample_value(
        "herald_scheduler_last_pass_timestamp_seconds"
    ), "the scheduler loop ran a pass at start"
    # Queue statistics are sampled in the background; read them once directly.
    stats = await service.consumers.queue_stats()
    assert stats["herald.orders"].consumers == 1  # our consumer
    assert "herald.dead-letter" in stats


async def test_readyz_is_red_once_consumers_are_gone(
    amqp_url: str, smtp_server: SmtpServer, tmp_path: Path, broker: Broker
) -> None:
    herald = await build_service(service_settings(amqp_url, smtp_server, tmp_path))
    await herald.start()
    port = http_port(herald)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/readyz")).status_code == 200
        await herald.consumers.stop(grace_seconds=1)
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).status_code == 200
    await herald.stop()


async def test_queues_have_exactly_the_contract_arguments(service: Service, amqp_url: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for domain in DOMAINS:
            channel = await connection.channel()
            # Re-declaring with the contract's arguments succeeds only if they are identical.
            await channel.declare_queue(
                queue_name(domain),
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-dead-letter-exchange": "herald.dlx",
                    "x-delivery-limit": 50,
                },
            )
            with pytest.raises(ChannelPreconditionFailed):
                await channel.declare_queue(
                    queue_name(domain),
                    durable=True,
                    arguments={"x-queue-type": "quorum", "x-delivery-limit": 20},
                )
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            "portal.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        assert exchange.name == "portal.events"


async def test_each_domain_queue_is_bound_and_consumed(service: Service, broker: Broker) -> None:
    for domain in DOMAINS:
        document = load_example("orders.order.placed")
        document["type"] = f"{domain}.something.happened"
        await broker.publish(document)
    for domain in DOMAINS:
        await wait_for_metric(service, "herald_events_received_total", 1, domain=domain)
        await wait_for_metric(
            service, "herald_events_ignored_total", 1, domain=domain, reason="unknown_type"
        )


async def test_transient_smtp_reply_is_retried_and_sent_once(
    service: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    smtp_server.scripted_replies.extend(["451 4.3.0 try again later", "421 4.4.2 busy"])
    document = load_example("orders.quote.created")
    await broker.publish(document)
    (item,) = await smtp_server.wait_for(1)
    await wait_for_metric(service, "herald_events_processed_total", 1, domain="orders")
    assert item.recipients == ["it@northwind.example"]
    assert (
        metric(service, "herald_notifications_total", notification="new_quote", outcome="sent") == 1
    )
    (record,) = await service.ledger.deliveries_of_event(document["source"], document["id"])
    assert (record.status, record.attempts) == ("sent", 1)


async def test_permanent_smtp_reply_is_recorded_not_retried(
    service: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    smtp_server.scripted_replies.append("550 5.1.1 mailbox unavailable")
    document = load_example("orders.quote.canceled")
    await broker.publish(document)
    await wait_for_metric(
        service, "herald_notifications_total", 1, notification="quote_canceled", outcome="failed"
    )
    await wait_for_metric(service, "herald_events_processed_total", 1, domain="orders")
    (record,) = await service.ledger.deliveries_of_event(document["source"], document["id"])
    assert record.status == "failed" and "550" in (record.detail or "")
    assert smtp_server.received == []
    assert await broker.queue_depth("herald.dead-letter") == 0


async def test_smtp_outage_is_retried_through_the_broker_without_loss(
    amqp_url: str,
    smtp_server: SmtpServer,
    tmp_path: Path,
    broker: Broker,
    unused_tcp_port_factory: Callable[[], int],
) -> None:
    # Given a mail server that is down
    down_port = unused_tcp_port_factory()
    settings = service_settings(
        amqp_url,
        smtp_server,
        tmp_path,
        smtp_port=down_port,
        smtp_timeout_seconds=1,
        retry_delays_ms=(200, 400),
    )
    herald = await build_service(settings)
    await herald.start()
    # Another consumer of portal.events: retries must never be republished there.
    probe = await broker.channel.declare_queue(exclusive=True)
    await probe.bind("portal.events", routing_key="#")
    controller = None
    try:
        document = load_example("orders.quote.created")
        await broker.publish(document)
        # When the delivery has gone through the broker-side retry queues at least twice
        await wait_for_metric(herald, "herald_events_retried_total", 2, domain="orders", timeout=30)
        assert await broker.queue_depth("herald.dead-letter") == 0
        # Then, once the server is back, it is delivered exactly once
        server, controller = start_smtp_server(down_port)
        (item,) = await server.wait_for(1, timeout=30)
        await wait_for_metric(herald, "herald_events_processed_total", 1, domain="orders")
        assert item.recipients == ["it@northwind.example"]
        assert await broker.queue_depth("herald.dead-letter") == 0
        assert len(server.received) == 1
        (record,) = await herald.ledger.deliveries_of_event(document["source"], document["id"])
        assert record.status == "sent" and record.attempts >= 3
        seen = []
        while (message := await probe.get(no_ack=True, fail=False)) is not None:
            seen.append(message.message_id)
        assert seen == [document["id"]]  # the original publish only
    finally:
        await herald.stop()
        if controller is not None:
            controller.stop()


def _herald_env(amqp_url: str, tmp_path: Path, http_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "HERALD_AMQP_URL": amqp_url,
        "HERALD_DATABASE_URL": f"sqlite:///{tmp_path}/herald.db",
        "HERALD_HTTP_PORT": str(http_port),
        "HERALD_SHUTDOWN_GRACE_SECONDS": "5",
    }


def test_topology_declare_command(amqp_url: str, tmp_path: Path, unused_tcp_port: int) -> None:
    result = subprocess.run(
        [HERALD, "topology", "declare"],
        env=_herald_env(amqp_url, tmp_path, unused_tcp_port),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "herald.dead-letter" in result.stderr


def test_invalid_setting_stops_the_start_naming_the_field(tmp_path: Path) -> None:
    env = {**os.environ, "HERALD_SMTP_PORT": "not-a-port"}
    result = subprocess.run(
        [HERALD, "run"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 2
    assert "HERALD_SMTP_PORT" in result.stderr


def test_invalid_config_file_stops_the_start(tmp_path: Path) -> None:
    config = tmp_path / "herald.yaml"
    config.write_text("recipients:\n  org-1:\n    orders:\n      emails: [not-an-address]\n")
    env = {**os.environ, "HERALD_CONFIG": str(config)}
    result = subprocess.run(
        [HERALD, "run"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 2
    assert "recipients.org-1.orders.emails.0" in result.stderr


async def test_herald_run_dev_smtp_writes_outbox_and_stops_gracefully(
    amqp_url: str, tmp_path: Path, broker: Broker, unused_tcp_port_factory: Callable[[], int]
) -> None:
    http, smtp = unused_tcp_port_factory(), unused_tcp_port_factory()
    config = tmp_path / "herald.yaml"
    config.write_text(
        "recipients:\n  org-1204:\n    orders:\n      emails: [copies@bluepeak.example]\n"
        "brand:\n  default: Operator Cloud\n  partners:\n    org-1204: {name: BluePeak Portal}\n"
    )
    env = {**_herald_env(amqp_url, tmp_path, http), "HERALD_CONFIG": str(config)}
    process = await asyncio.create_subprocess_exec(
        HERALD,
        "run",
        "--dev-smtp",
        "--dev-smtp-port",
        str(smtp),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http}") as client:
            for _ in range(300):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("herald run never became ready")
        await broker.publish(load_example("orders.order.placed"))
        outbox = tmp_path / "outbox"
        for _ in range(300):
            if len(list(outbox.glob("*.eml"))) >= 3:
                break
            await asyncio.sleep(0.1)
        files = sorted(outbox.glob("*.eml"))
        assert len(files) == 3  # order placer, vendor account manager, configured copy
        subjects = {
            str(message_from_bytes(path.read_bytes(), policy=policy.default)["Subject"])
            for path in files
        }
        assert subjects == {
            "Order confirmation from BluePeak Portal (new): PO-2025-004817 for Northwind Health"
        }
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert b"herald stopped" in stderr
