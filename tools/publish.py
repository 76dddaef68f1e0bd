"""`herald publish-example`: publish the contract's example events the way upstream does
(EVENTS.md section 2), so a newcomer sees mail arrive and an operator can smoke-test a stack.

Each copy gets a fresh `id` and `time`, so Herald treats it as a new event rather than a
duplicate. Publishing is confirmed and mandatory: an event no queue is bound for is an error
(Herald's topology is not declared yet), not a silent drop.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika

from herald.consumers.connection import broker_unreachable
from herald.consumers.topology import EVENTS_EXCHANGE
from herald.errors import ConfigurationError
from herald.schemas.examples import example_names, load_example


@dataclass(frozen=True, slots=True)
class Published:
    event_type: str
    event_id: str


def fresh_event(example: dict[str, Any]) -> dict[str, Any]:
    """A copy of an example event with a new id and the current time."""
    event = copy.deepcopy(example)
    event["id"] = str(uuid.uuid4())
    event["time"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return event


async def publish_examples(url: str, names: list[str], copies: int = 1) -> list[Published]:
    """Publish `copies` fresh events of each example (`orders.order.placed`,
    `orders.order.placed+marketplace`), each confirmed by the broker."""
    unknown = sorted(set(names) - set(example_names()))
    if unknown:
        raise ConfigurationError(
            f"no example event {', '.join(unknown)}; `herald publish-example --list` shows them"
        )
    published: list[Published] = []
    try:
        connection = await aio_pika.connect(
            url, client_properties={"connection_name": "herald-publish"}
        )
    except (aio_pika.exceptions.AMQPError, OSError) as exc:
        raise broker_unreachable(url, exc) from exc
    async with connection:
        # on_return_raises: an unroutable mandatory message fails its publish instead of vanishing.
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.declare_exchange(
            EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True, auto_delete=False
        )
        for name in names:
            example = load_example(name)
            for _ in range(copies):
                event = fresh_event(example)
                await exchange.publish(
                    aio_pika.Message(
                        body=json.dumps(event).encode(),
                        content_type="application/cloudevents+json",
                        message_id=event["id"],
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        timestamp=datetime.now(UTC),
                        app_id="herald-publish",
                    ),
                    routing_key=event["type"],
                    mandatory=True,
                    timeout=30,
                )
                published.append(Published(event["type"], event["id"]))
    return published
