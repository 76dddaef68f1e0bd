"""A webhook receiver for the tests, run in the test process with aiohttp: it checks every
request with the official Standard Webhooks library (`standardwebhooks`), as a receiver of
Herald's webhooks would, records the verdict, and answers as the test scripts it. Plus the
config file of a partner subscribed by webhook, and an httpx client that sends to the local
http server what Herald addressed to https (the config demands https)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET_NAME = "bluepeak-catalog"


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float  # the event loop's clock when it arrived
    problem: str | None  # None: the standard library verified it; else its error


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Receiver:
    url: str
    secret: str | bytes  # as a receiver gives it to `Webhook(...)`
    answers: list[Answer] = field(default_factory=list)  # given in order; then 204
    received: list[Received] = field(default_factory=list)

    async def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.received) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {count} requests, got {len(self.received)}")
            await asyncio.sleep(0.02)


@asynccontextmanager
async def running_receiver(port: int, secret: str | bytes) -> AsyncIterator[Receiver]:
    receiver = Receiver(url=f"http://127.0.0.1:{port}/catalog", secret=secret)

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            Webhook(receiver.secret).verify(body, headers)
            problem = None
        except WebhookVerificationError as exc:
            problem = str(exc)
        receiver.received.append(
            Received(headers, body, asyncio.get_running_loop().time(), problem)
        )
        answer = receiver.answers.pop(0) if receiver.answers else Answer(204)
        return web.Response(status=answer.status, headers=answer.headers)

    app = web.Application()
    app.router.add_post("/catalog", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield receiver
    finally:
        await runner.cleanup()


def x_signature_256_verifies(secret: bytes, request: Received) -> bool:
    """Draft 1's `X-Signature-256`, keyed with the configured secret's bytes."""
    expected = "sha256=" + hmac.new(secret, request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(request.headers.get("x-signature-256", ""), expected)


def subscriber_config(tmp_path: Path, url: str) -> Path:
    """org-2210 (the example event's partner) subscribed to catalog changes by email and by
    the webhook at `url` (written as https)."""
    path = tmp_path / "herald.yaml"
    path.write_text(
        "recipients:\n"
        "  org-2210:\n"
        "    catalog_changes:\n"
        "      emails: [catalog@bluepeak.example]\n"
        "      webhooks:\n"
        f"        - url: {url.replace('http://', 'https://')}\n"
        f"          secret_name: {SECRET_NAME}\n"
    )
    return path


class LoopbackClient:
    """Sends to the local http test server what the sender addressed to https."""

    def __init__(self) -> None:
        self._client = httpx.AsyncClient(timeout=10)

    async def post(self, url: str, **kwargs: Any) -> Any:
        return await self._client.post(url.replace("https://", "http://"), **kwargs)

    async def aclose(self) -> None:
        await self._client.aclose()
