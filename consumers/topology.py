"""Herald's RabbitMQ topology, exactly as EVENTS.md section 2 declares it."""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue

EVENTS_EXCHANGE = "portal.events"
DEAD_LETTER_EXCHANGE = "herald.dlx"
DEAD_LETTER_QUEUE = "herald.dead-letter"
DOMAINS = ("orders", "subscriptions", "users", "interop", "catalog")
DELIVERY_LIMIT = 50
# Broker-side delayed retry: a valid message that failed for a transient reason waits in one of
# these per-domain queues, then the broker dead-letters it back into herald.<domain>.
DEFAULT_RETRY_DELAYS_MS = (5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000)


def queue_name(domain: str) -> str:
    return f"herald.{domain}"


def retry_queue_name(domain: str, delay_ms: int) -> str:
    return f"herald.{domain}.retry.{delay_ms}ms"


@dataclass(frozen=True, slots=True)
class DeclaredTopology:
    queues: dict[str, AbstractQueue]  # domain -> its queue
    dead_letter_queue: AbstractQueue


async def declare(
    channel: AbstractChannel, retry_delays_ms: tuple[int, ...] = DEFAULT_RETRY_DELAYS_MS
) -> DeclaredTopology:
    """Declare (idempotently) the exchanges, the five domain queues, their retry queues and
    the dead-letter queue."""
    events = await channel.declare_exchange(
        EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True, auto_delete=False
    )
    dlx = await channel.declare_exchange(
        DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True, auto_delete=False
    )
    dead_letters = await channel.declare_queue(
        DEAD_LETTER_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead_letters.bind(dlx, routing_key="")
    queues: dict[str, AbstractQueue] = {}
    for domain in DOMAINS:
        queue = await channel.declare_queue(
            queue_name(domain),
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                "x-delivery-limit": DELIVERY_LIMIT,
            },
        )
        await queue.bind(events, routing_key=f"{domain}.#")
        queues[domain] = queue
        for delay_ms in retry_delays_ms:
            await channel.declare_queue(
                retry_queue_name(domain, delay_ms),
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-message-ttl": delay_ms,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": queue_name(domain),
                    # Expiry must not lose the message: at-least-once dead-lettering.
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
    return DeclaredTopology(queues=queues, dead_letter_queue=dead_letters)
