"""The provider webhooks of the public listener: `POST /hooks/ses` (Amazon SES through SNS) and
`POST /hooks/sendgrid` (SendGrid's Event Webhook), only for the providers configured.

`feedback/` verifies and reads a request; this module reads the body (bounded), records the
reports in the ledger and answers: 200 only once every report is written; 400 for a malformed
or oversized body and 401 for a missing, bad or stale signature (nothing changed); 503 when the
ledger or the provider cannot be reached, so that the provider delivers again (a repeat changes
nothing). Every report, ignored item and rejection is counted in
`herald_feedback_reports_total`; one log line per request, never an address.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from herald.errors import TransientError
from herald.feedback.ports import FeedbackLedger, FeedbackObserver
from herald.feedback.sendgrid import MAX_BODY_BYTES as SENDGRID_MAX_BYTES
from herald.feedback.sendgrid import SIGNATURE_HEADER, TIMESTAMP_HEADER, SendGridWebhook
from herald.feedback.ses import SesWebhook
from herald.feedback.sns import MAX_BODY_BYTES as SNS_MAX_BYTES
from herald.feedback.verdict import Ignored, Item, Rejected

log = logging.getLogger(__name__)

Handle = Callable[[web.Request, bytes], Awaitable[list[Item]]]


async def read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is longer than `limit` (read no further than that)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    async for chunk in request.content.iter_chunked(65_536):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


class HookEndpoint:
    """One provider's endpoint: read, verify and parse (`handle`), record, answer, count."""

    def __init__(
        self,
        source: str,
        max_bytes: int,
        handle: Handle,
        ledger: FeedbackLedger,
        observer: FeedbackObserver,
    ) -> None:
        self.source = source
        self.max_bytes = max_bytes
        self.handle = handle
        self.ledger = ledger
        self.observer = observer

    async def serve(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        body = await read_bounded(request, self.max_bytes)
        try:
            if body is None:
                raise Rejected("too_large", 400)
            items = await self.handle(request, body)
            outcomes = [await self._record(item) for item in items]
        except Rejected as rejected:
            return self._answer(started, rejected.status, "rejected", rejected.reason)
        except TransientError as exc:  # the ledger or the provider: deliver again later
            return self._answer(started, 503, "rejected", f"{exc.retry_reason}_unavailable")
        for outcome, reason in outcomes:
            self.observer.feedback(self.source, outcome, reason)
        counted = {
            name: sum(1 for o, _ in outcomes if o == name)
            for name in ("recorded", "repeat", "ignored")
        }
        outcome = next((name for name, count in counted.items() if count), "ignored")
        return self._answer(started, 200, outcome, "", counted, count=False)

    async def _record(self, item: Item) -> tuple[str, str]:
        if isinstance(item, Ignored):
            return "ignored", item.reason
        result = await self.ledger.record_feedback(item)
        if result is None:  # unreachable with an address; kept for the ledger's contract
            return "ignored", "unknown_delivery"
        changed = result.suppression_added or result.delivery_updated
        return ("recorded" if changed else "repeat"), item.kind

    def _answer(
        self,
        started: float,
        status: int,
        outcome: str,
        reason: str,
        counted: dict[str, int] | None = None,
        *,
        count: bool = True,
    ) -> web.Response:
        if count:
            self.observer.feedback(self.source, outcome, reason)
        log.info(
            "provider webhook",
            extra={
                "source": self.source,
                "status": status,
                "outcome": outcome,
                "reason": reason,
                **(counted or {}),
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return web.Response(status=status, text=reason or "ok")


def hook_routes(
    ledger: FeedbackLedger,
    observer: FeedbackObserver,
    *,
    ses: SesWebhook | None = None,
    sendgrid: SendGridWebhook | None = None,
) -> list[web.RouteDef]:
    """The routes of the configured providers (an unconfigured one's path answers 404)."""
    routes = []
    if ses is not None:
        webhook = ses

        async def handle_ses(_: web.Request, body: bytes) -> list[Item]:
            return await webhook.handle(body)

        routes.append(
            web.post(
                "/hooks/ses", HookEndpoint("ses", SNS_MAX_BYTES, handle_ses, ledger, observer).serve
            )
        )
    if sendgrid is not None:
        verifier = sendgrid

        async def handle_sendgrid(request: web.Request, body: bytes) -> list[Item]:
            headers = request.headers
            return verifier.handle(
                headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER), body
            )

        routes.append(
            web.post(
                "/hooks/sendgrid",
                HookEndpoint(
                    "sendgrid", SENDGRID_MAX_BYTES, handle_sendgrid, ledger, observer
                ).serve,
            )
        )
    return routes
