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


def queue_name(domain: str) -> str:
    return f"herald.{domain}"


@dataclass(frozen=True, slots=True)
class DeclaredTopology:
    queues: dict[str, AbstractQueue]  # domain -> its queue
    dead_letter_queue: AbstractQueue


async def declare(channel: AbstractChannel) -> DeclaredTopology:
    """Declare (idempotently) the exchanges, the five domain queues and the dead-letter queue."""
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
    return DeclaredTopology(queues=queues, dead_letter_queue=dead_letters)
