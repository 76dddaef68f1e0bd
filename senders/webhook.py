"""Webhook delivery with httpx (NOTIFICATIONS.md 6.3): `POST` the CloudEvent with
`X-Signature-256` and the Standard Webhooks headers (`senders/webhook_signing.py`).

How an answer is taken: any 2xx is delivered; a 4xx other than 408 and 429 is permanent
(`PermanentWebhookError`: recorded failed, never retried); 5xx, 408, 429, other answers,
connection errors and timeouts (10 s) are transient (`TransientWebhookError`): retried in
process with backoff, then through the broker's retry queues. A `Retry-After` on a retried
answer is honoured: in process when it is at most `IN_PROCESS_RETRY_AFTER_MAX_SECONDS` (the
wait is then at least that long), otherwise the delivery goes to the broker at once, carrying
the value for the consumer to pick a long enough retry queue.

Secrets are resolved by name from the environment (`HERALD_WEBHOOK_SECRET_<NAME>`, the name
upper-cased with every other character as `_`), never from the config file.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from herald.clock import utc_now
from herald.errors import ConfigurationError, PermanentWebhookError, TransientError
from herald.renderers.webhook import OutgoingWebhook
from herald.schemas.decode import CONTENT_TYPE
from herald.senders.base import SendResult
from herald.senders.retry_after import retry_after_seconds
from herald.senders.webhook_signing import checked_headers, standard_key, standard_signature
from herald.senders.webhook_signing import signature as signature

TIMEOUT_SECONDS = 10.0
# A receiver asking for a longer pause than this is not waited for in process (the delivery
# would hold its consumer's slot): the broker's retry queues wait instead.
IN_PROCESS_RETRY_AFTER_MAX_SECONDS = 5.0
# Answers that are retried although they are 4xx (NOTIFICATIONS.md 6.3).
RETRIED_4XX = frozenset({408, 429})


class TransientWebhookError(TransientError):
    """The endpoint did not answer 2xx in time; retry later (no sooner than
    `retry_after_seconds`, when the endpoint said so)."""

    retry_reason = "webhook"

    def __init__(self, message: str, retry_after_seconds: float | None = None) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(message)


class WebhookObserver(Protocol):
    """What the sender reports; service/metrics.py implements it with Prometheus metrics."""

    def webhook_answered(self, notification: str, status_class: str) -> None:
        """One attempt ended: `2xx`, `3xx`, `4xx` (permanent), `408`, `429`, `5xx`, `timeout`
        or `connection` (no answer)."""


class NullWebhookObserver:
    def webhook_answered(self, notification: str, status_class: str) -> None:
        pass


def status_class(status: int) -> str:
    """A low-cardinality label for an HTTP status: the retried 4xx by name, else the class."""
    return str(status) if status in RETRIED_4XX else f"{status // 100}xx"


def secret_variable(name: str) -> str:
    return "HERALD_WEBHOOK_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def load_secrets(names: Iterable[str], environ: Mapping[str, str] = os.environ) -> dict[str, bytes]:
    """Every named secret, or a ConfigurationError naming the missing or malformed variables
    (never their values)."""
    secrets: dict[str, bytes] = {}
    missing = []
    for name in sorted(set(names)):
        value = environ.get(secret_variable(name))
        if not value:
            missing.append(secret_variable(name))
            continue
        try:
            standard_key(value.encode())
        except ValueError as exc:
            raise ConfigurationError(f"{secret_variable(name)}: {exc}") from None
        secrets[name] = value.encode()
    if missing:
        raise ConfigurationError(f"webhook secrets not set: {', '.join(missing)}")
    return secrets


def _retried_in_process(error: BaseException) -> bool:
    if not isinstance(error, TransientWebhookError):
        return False
    wait = error.retry_after_seconds
    return wait is None or wait <= IN_PROCESS_RETRY_AFTER_MAX_SECONDS


class WebhookSender:
    def __init__(
        self,
        secrets: Mapping[str, bytes],
        retry_base_seconds: float = 1.0,
        retry_attempts: int = 3,
        client: httpx.AsyncClient | None = None,
        observer: WebhookObserver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secrets = secrets
        self._keys: dict[str, bytes] = {}
        for name, secret in secrets.items():
            try:
                self._keys[name] = standard_key(secret)
            except ValueError as exc:
                raise ConfigurationError(f"webhook secret {name!r}: {exc}") from None
        self._retry_base_seconds = retry_base_seconds
        self._retry_attempts = retry_attempts
        self._observer: WebhookObserver = observer or NullWebhookObserver()
        self._clock = clock
        self._client = client or httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False)

    async def send(self, webhook: OutgoingWebhook) -> SendResult:
        """Deliver one webhook, or raise TransientWebhookError (retry later) or
        PermanentWebhookError (record it failed)."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(_retried_in_process),
            wait=self._wait,
            stop=stop_after_attempt(self._retry_attempts),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._post(webhook)
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _wait(self, state: RetryCallState) -> float:
        """The backoff, or the receiver's `Retry-After` when that is longer."""
        backoff = float(wait_random_exponential(multiplier=self._retry_base_seconds, max=30)(state))
        error = state.outcome.exception() if state.outcome is not None else None
        asked = error.retry_after_seconds if isinstance(error, TransientWebhookError) else None
        return max(backoff, asked or 0.0)

    async def _post(self, webhook: OutgoingWebhook) -> SendResult:
        secret = self._secrets.get(webhook.secret_name)
        key = self._keys.get(webhook.secret_name)
        if secret is None or key is None:
            raise ConfigurationError(f"webhook secret {webhook.secret_name!r} is not loaded")
        timestamp = int(self._clock())  # this attempt's, so a receiver can reject replays
        headers = checked_headers(
            {
                "Content-Type": CONTENT_TYPE,
                "X-Signature-256": signature(secret, webhook.body),
                # The notification instance id: the same on every retry of this delivery.
                "webhook-id": webhook.key,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": standard_signature(key, webhook.key, timestamp, webhook.body),
                "User-Agent": "herald-webhooks",
            }
        )
        try:
            response = await self._client.post(webhook.url, content=webhook.body, headers=headers)
        except httpx.HTTPError as exc:
            failure = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
            self._observer.webhook_answered(webhook.notification, failure)
            raise TransientWebhookError(f"webhook request failed: {type(exc).__name__}") from exc
        status = response.status_code
        self._observer.webhook_answered(webhook.notification, status_class(status))
        if 200 <= status < 300:
            return SendResult(code=status, response=f"HTTP {status}")
        if 400 <= status < 500 and status not in RETRIED_4XX:
            raise PermanentWebhookError(f"webhook answered {status}", status)
        raise TransientWebhookError(
            f"webhook answered {status}",
            retry_after_seconds(response.headers.get("Retry-After"), utc_now()),
        )

    async def close(self) -> None:
        await self._client.aclose()
