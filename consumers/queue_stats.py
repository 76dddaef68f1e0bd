"""What the queue watch reports of Herald's queues without consuming from them: depth and
consumers (a passive declare), the domain queues' oldest-message age (an upper bound, from what
was last taken), and when a dead letter was rejected."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractRobustChannel


@dataclass(frozen=True, slots=True)
class QueueStats:
    messages: int  # ready
    consumers: int
    oldest_age_seconds: float | None  # None: not known here


@dataclass
class QueueAges:
    """How old the oldest ready message of each queue is, without consuming it.

    A domain queue cannot be peeked (a requeue counts towards `x-delivery-limit`), so its age is
    an upper bound: the queue is FIFO, so the head is younger than the last message taken
    (by its AMQP `timestamp`, else the time it was taken). While nothing has been taken, it is
    the time the queue has been seen non-empty.
    """

    last_published: dict[str, float] = field(default_factory=dict)
    nonempty_since: dict[str, float] = field(default_factory=dict)

    def taken(self, domain: str, published: datetime | None) -> None:
        self.last_published[domain] = (
            published.timestamp() if published is not None else time.time()
        )

    def domain_age(self, domain: str, messages: int) -> float:
        if messages == 0:
            self.seen_empty(domain)
            return 0.0
        since = self.seen_nonempty(domain)
        last = self.last_published.get(domain)
        return since if last is None else max(0.0, time.time() - last)

    def seen_nonempty(self, key: str) -> float:
        now = time.time()
        return now - self.nonempty_since.setdefault(key, now)

    def seen_empty(self, key: str) -> None:
        self.nonempty_since.pop(key, None)


async def queue_depth(channel: AbstractRobustChannel, name: str) -> tuple[int, int]:
    # Not `channel.declare_queue(passive=True)`: a robust channel hands back its cached queue,
    # whose declaration result is the first one's, so the counts would never change.
    underlay = await channel.get_underlay_channel()
    result = await underlay.queue_declare(name, passive=True)
    return int(result.message_count or 0), int(result.consumer_count or 0)


def rejection_time(headers: Mapping[str, Any], timestamp: datetime | None) -> datetime | None:
    """When a dead letter was rejected: Herald's `x-rejected-at`, else the broker's `x-death`
    time (delivery limit), else the message's `timestamp`."""
    rejected_at = headers.get("x-rejected-at")
    if isinstance(rejected_at, bytes):
        rejected_at = rejected_at.decode(errors="replace")
    if isinstance(rejected_at, str):
        try:
            return datetime.fromisoformat(rejected_at)
        except ValueError:
            pass
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        died = deaths[0].get("time")
        if isinstance(died, datetime):
            return died if died.tzinfo else died.replace(tzinfo=UTC)
    if timestamp is not None:
        return timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
    return None
