"""Webhook delivery with httpx: `POST` the CloudEvent, signed with HMAC-SHA256 of the raw body
in `X-Signature-256: sha256=<hex>`. Any 2xx is delivered; other replies and timeouts (10 s) are
transient and retried with backoff, first in process, then through the broker.

Secrets are resolved by name from the environment (`HERALD_WEBHOOK_SECRET_<NAME>`, the name
upper-cased with every other character as `_`), never from the config file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from herald.errors import ConfigurationError, TransientError
from herald.renderers.webhook import OutgoingWebhook
from herald.schemas.decode import CONTENT_TYPE
from herald.senders.base import SendResult

TIMEOUT_SECONDS = 10.0


class TransientWebhookError(TransientError):
    """The endpoint did not answer 2xx in time; retry later."""

    retry_reason = "webhook"


def secret_variable(name: str) -> str:
    return "HERALD_WEBHOOK_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def load_secrets(names: Iterable[str], environ: Mapping[str, str] = os.environ) -> dict[str, bytes]:
    """Every named secret, or a ConfigurationError naming the missing variables."""
    secrets: dict[str, bytes] = {}
    missing = []
    for name in sorted(set(names)):
        value = environ.get(secret_variable(name))
        if value:
            secrets[name] = value.encode()
        else:
            missing.append(secret_variable(name))
    if missing:
        raise ConfigurationError(f"webhook secrets not set: {', '.join(missing)}")
    return secrets


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookSender:
    def __init__(
        self,
        secrets: Mapping[str, bytes],
        retry_base_seconds: float = 1.0,
        retry_attempts: int = 3,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._secrets = secrets
        self._retry_base_seconds = retry_base_seconds
        self._retry_attempts = retry_attempts
        self._client = client or httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False)

    async def send(self, webhook: OutgoingWebhook) -> SendResult:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientWebhookError),
            wait=wait_random_exponential(multiplier=self._retry_base_seconds, max=30),
            stop=stop_after_attempt(self._retry_attempts),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._post(webhook)
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _post(self, webhook: OutgoingWebhook) -> SendResult:
        secret = self._secrets.get(webhook.secret_name)
        if secret is None:
            raise ConfigurationError(f"webhook secret {webhook.secret_name!r} is not loaded")
        headers = {
            "Content-Type": CONTENT_TYPE,
            "X-Signature-256": signature(secret, webhook.body),
            "User-Agent": "herald-webhooks",
        }
        try:
            response = await self._client.post(webhook.url, content=webhook.body, headers=headers)
        except httpx.HTTPError as exc:
            raise TransientWebhookError(f"webhook request failed: {type(exc).__name__}") from exc
        if not 200 <= response.status_code < 300:
            raise TransientWebhookError(f"webhook answered {response.status_code}")
        return SendResult(code=response.status_code, response=f"HTTP {response.status_code}")

    async def close(self) -> None:
        await self._client.aclose()
