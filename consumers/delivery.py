"""The transport-neutral view of one AMQP delivery, handed to the handler the wiring provides."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """What the later stages need of a delivery; no aio-pika type leaks past the consumer.

    `routing_key` is the key the publisher used: for a message replayed from the dead-letter
    queue into Herald's own queue it comes from the `x-herald-original-routing-key` header.
    """

    body: bytes
    routing_key: str
    content_type: str | None
    content_encoding: str | None
    message_id: str | None
    queue: str
    redelivered: bool = False
    delivery_count: int = 0
    received_at: float = 0.0  # time.monotonic() when the broker's delivery reached Herald
