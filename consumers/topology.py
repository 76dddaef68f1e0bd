"""Herald's RabbitMQ topology, exactly as EVENTS.md section 2 declares it, written once as data.

`declare` creates it on a channel (idempotently, at start-up); `definitions` exports the same data
in RabbitMQ's definitions format (`deploy/rabbitmq/definitions.json`, imported by operators and
the compose stack). Both read `layout`, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
class ExchangeSpec:
    name: str
    type: aio_pika.ExchangeType


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A durable quorum queue; `domain` is set for the five consumed domain queues."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    domain: str | None = None


@dataclass(frozen=True, slots=True)
class BindingSpec:
    exchange: str
    queue: str
    routing_key: str


@dataclass(frozen=True, slots=True)
class Layout:
    exchanges: tuple[ExchangeSpec, ...]
    queues: tuple[QueueSpec, ...]
    bindings: tuple[BindingSpec, ...]


def layout(retry_delays_ms: tuple[int, ...] = DEFAULT_RETRY_DELAYS_MS) -> Layout:
    """Every exchange, queue and binding Herald needs, in declaration order."""
    queues = [QueueSpec(DEAD_LETTER_QUEUE, {"x-queue-type": "quorum"})]
    bindings = [BindingSpec(DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, "")]
    for domain in DOMAINS:
        queues.append(
            QueueSpec(
                queue_name(domain),
                {
                    "x-queue-type": "quorum",
                    "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                    "x-delivery-limit": DELIVERY_LIMIT,
                },
                domain=domain,
            )
        )
        bindings.append(BindingSpec(EVENTS_EXCHANGE, queue_name(domain), f"{domain}.#"))
        queues.extend(
            QueueSpec(
                retry_queue_name(domain, delay_ms),
                {
                    "x-queue-type": "quorum",
                    "x-message-ttl": delay_ms,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": queue_name(domain),
                    # Expiry must not lose the message: at-least-once dead-lettering.
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
            for delay_ms in retry_delays_ms
        )
    return Layout(
        exchanges=(
            ExchangeSpec(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC),
            ExchangeSpec(DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.FANOUT),
        ),
        queues=tuple(queues),
        bindings=tuple(bindings),
    )


@dataclass(frozen=True, slots=True)
class DeclaredTopology:
    queues: dict[str, AbstractQueue]  # domain -> its queue
    dead_letter_queue: AbstractQueue


async def declare(
    channel: AbstractChannel, retry_delays_ms: tuple[int, ...] = DEFAULT_RETRY_DELAYS_MS
) -> DeclaredTopology:
    """Declare (idempotently) the exchanges, the five domain queues, their retry queues and
    the dead-letter queue."""
    wanted = layout(retry_delays_ms)
    exchanges = {
        spec.name: await channel.declare_exchange(
            spec.name, spec.type, durable=True, auto_delete=False
        )
        for spec in wanted.exchanges
    }
    declared = {
        spec.name: await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments)
        for spec in wanted.queues
    }
    for binding in wanted.bindings:
        await declared[binding.queue].bind(
            exchanges[binding.exchange], routing_key=binding.routing_key
        )
    return DeclaredTopology(
        queues={spec.domain: declared[spec.name] for spec in wanted.queues if spec.domain},
        dead_letter_queue=declared[DEAD_LETTER_QUEUE],
    )


async def declare_domain_queue(channel: AbstractChannel, domain: str) -> AbstractQueue:
    """Declare (idempotently) one domain queue and its binding on `channel`, as `declare` does
    (the exchange must exist): a robust channel re-declares both on every reconnect, before
    consuming again, and a queue an operator deleted comes back whole."""
    wanted = layout()
    spec = next(spec for spec in wanted.queues if spec.domain == domain)
    queue = await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments)
    for binding in wanted.bindings:
        if binding.queue == spec.name:
            await queue.bind(binding.exchange, routing_key=binding.routing_key)
    return queue


def definitions(
    vhost: str = "/", retry_delays_ms: tuple[int, ...] = DEFAULT_RETRY_DELAYS_MS
) -> dict[str, Any]:
    """The topology in RabbitMQ's definitions format (`rabbitmqctl import_definitions`, the
    management API's POST /api/definitions). Users, vhosts and policies are the operator's:
    Herald sets everything it needs through queue arguments, as the contract specifies."""
    wanted = layout(retry_delays_ms)
    return {
        "exchanges": [
            {
                "name": spec.name,
                "vhost": vhost,
                "type": spec.type.value,
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for spec in wanted.exchanges
        ],
        "queues": [
            {
                "name": spec.name,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": spec.arguments,
            }
            for spec in wanted.queues
        ],
        "bindings": [
            {
                "source": binding.exchange,
                "vhost": vhost,
                "destination": binding.queue,
                "destination_type": "queue",
                "routing_key": binding.routing_key,
                "arguments": {},
            }
            for binding in wanted.bindings
        ],
    }
