"""The copies the consumer publishes of a delivery: the dead-letter copy (EVENTS.md section 11)
and the retry copy parked in a delayed retry queue. Both are bounded in size, so publishing a
copy can never exceed the broker's frame limit and close the connection.

Only what Herald wrote, or what the broker wrote when it dead-lettered, may be trusted later
(by the replay tool): a dead-letter copy drops any header a publisher set under Herald's or the
broker's reserved names and writes its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from pamqp.encode import field_table

from herald.consumers.header_decoding import MAX_NESTING
from herald.errors import RejectedMessage

# A header table larger than this (encoded) is bad input in itself (`headers_too_large`): a copy
# that adds Herald's headers to it could exceed the frame limit (131,072 bytes by default).
MAX_HEADER_BYTES = 16_384
HEADERS_TOO_LARGE = "headers_too_large"

ORIGINAL_ROUTING_KEY_HEADER = "x-herald-original-routing-key"
ORIGINAL_QUEUE_HEADER = "x-original-queue"
ATTEMPT_HEADER = "x-herald-attempt"
FIRST_FAILURE_HEADER = "x-herald-first-failure-at"
HEADERS_DROPPED_HEADER = "x-original-headers-dropped"

# Names a publisher must not be able to set on a dead letter: Herald's reject headers and the
# broker's dead-letter history. `x-herald-*` is Herald's own only on a message that came
# through the default exchange (its retry queues and the replay tool put it there).
_RESERVED_PREFIXES = ("x-reject-", "x-rejected-", "x-original-", "x-first-death-", "x-last-death-")
_BROKER_HEADERS = frozenset({"x-death", "x-delivery-count"})


def header_bytes(headers: Mapping[str, Any] | None) -> int | None:
    """The size of a header table as the broker sees it (AMQP field-table encoding), or None
    when it cannot be encoded again (a table nested past `header_decoding.MAX_NESTING`)."""
    if not headers:
        return 0
    try:
        return len(field_table(dict(headers)))
    except (TypeError, ValueError, RecursionError):
        return None


def check_header_size(headers: Mapping[str, Any] | None) -> None:
    size = header_bytes(headers)
    if size is None:
        raise RejectedMessage(
            HEADERS_TOO_LARGE,
            f"AMQP headers nest deeper than {MAX_NESTING} levels or cannot be encoded again",
        )
    if size > MAX_HEADER_BYTES:
        raise RejectedMessage(
            HEADERS_TOO_LARGE,
            f"AMQP headers are {size} bytes encoded, the limit is {MAX_HEADER_BYTES}",
        )


def _publisher_headers(message: AbstractIncomingMessage) -> dict[str, Any]:
    trusted_herald = message.exchange == ""
    return {
        name: value
        for name, value in (message.headers or {}).items()
        if name not in _BROKER_HEADERS
        and not name.startswith(_RESERVED_PREFIXES)
        and (trusted_herald or not name.startswith("x-herald-"))
    }


def dead_letter_copy(
    message: AbstractIncomingMessage,
    rejection: RejectedMessage,
    *,
    login: str | None,
    queue: str,
    routing_key: str,
    keep_headers: bool = True,
) -> aio_pika.Message:
    """The original body and properties, plus the headers of EVENTS.md section 11.

    `routing_key` is the key the consumer checked (for a replayed message, the original one);
    `queue` the queue it was taken from, where a replay puts it back. Without `keep_headers`
    (headers too large, or a full copy that could not be published) the publisher's headers are
    left out and `x-original-headers-dropped` says so.
    """
    keep = keep_headers and rejection.reason != HEADERS_TOO_LARGE
    headers: dict[str, Any] = _publisher_headers(message) if keep else {}
    if not keep:
        headers[HEADERS_DROPPED_HEADER] = True
    headers.update(
        {
            "x-reject-reason": rejection.reason,
            "x-reject-detail": rejection.detail,
            "x-rejected-at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "x-original-exchange": message.exchange or "",
            "x-original-routing-key": routing_key,
            ORIGINAL_QUEUE_HEADER: queue,
            "x-rejected-by": "herald",
        }
    )
    if message.message_id is None:
        # aiormq gives every publish a message_id; say that the original had none.
        headers["x-original-message-id-absent"] = True
    if message.expiration is not None:
        # A per-message TTL would let the broker drop the copy from the dead-letter queue.
        headers["x-original-expiration"] = str(message.expiration)
    return _copy(message, headers, user_id=message.user_id if message.user_id == login else None)


def retry_delay_ms(
    delays_ms: tuple[int, ...], attempt: int, not_before_ms: int | None = None
) -> int:
    """The retry queue's delay for this attempt: the attempt-th configured delay (the last one
    from then on). When the failing party asked not to be retried sooner than `not_before_ms`
    (an HTTP `Retry-After`), the smallest configured delay that covers it if that is longer,
    and at most the largest configured delay: only those queues exist."""
    delay = delays_ms[min(attempt, len(delays_ms)) - 1]
    if not_before_ms is None or not_before_ms <= delay:
        return delay
    return next((longer for longer in delays_ms if longer >= not_before_ms), delays_ms[-1])


def retry_copy(
    message: AbstractIncomingMessage,
    delays_ms: tuple[int, ...],
    not_before_ms: int | None = None,
) -> tuple[aio_pika.Message, int]:
    """The same body and properties with Herald's own attempt counter (the broker ignores a
    client's `x-death`), the original routing key and the time of the first failure; and the
    delay of the retry queue to park it in (`retry_delay_ms`)."""
    headers: dict[str, Any] = dict(message.headers or {})
    attempt = headers.get(ATTEMPT_HEADER, 0)
    attempt = (attempt if isinstance(attempt, int) else 0) + 1
    headers[ATTEMPT_HEADER] = attempt
    headers.setdefault(FIRST_FAILURE_HEADER, datetime.now(UTC).isoformat(timespec="seconds"))
    if message.exchange != "" or ORIGINAL_ROUTING_KEY_HEADER not in headers:
        headers[ORIGINAL_ROUTING_KEY_HEADER] = message.routing_key or ""
    for name in _BROKER_HEADERS:  # the broker's record of the retry hops; not ours to keep
        headers.pop(name, None)
    delay_ms = retry_delay_ms(delays_ms, attempt, not_before_ms)
    return _copy(message, headers, user_id=None), delay_ms


def _copy(
    message: AbstractIncomingMessage, headers: dict[str, Any], user_id: str | None
) -> aio_pika.Message:
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        # The broker rejects a user_id that is not the publishing connection's own.
        user_id=user_id,
        app_id=message.app_id,
    )
