"""The unsubscribe routes of the public listener (issue 19), added when
`HERALD_PUBLIC_BASE_URL` and `HERALD_UNSUBSCRIBE_KEYS` are set:

- `POST /unsubscribe/{token}`: with the form field `List-Unsubscribe=One-Click` (RFC 8058, what
  mail clients send) unsubscribes at once (source `one-click`) and answers 200 `unsubscribed`;
  with `action=unsubscribe` (the page's button) unsubscribes (source `page`) and answers the
  confirmation page. Anything else is 400. Repeating changes nothing.

A token that does not verify gets the same plain 400 whatever the reason (counted by reason in
`herald_unsubscribe_token_rejected_total`); a body above `MAX_FORM_BYTES` is 413; the ledger
unreachable is 503 (nothing changed, the client may try again). One log line per change, never
an address.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Protocol
from urllib.parse import parse_qs

from aiohttp import web

from herald.catalog.optional import UnsubscribeScope
from herald.errors import TransientError
from herald.renderers.unsubscribe_tokens import (
    InvalidUnsubscribeToken,
    TokenSubject,
    UnsubscribeTokens,
)
from herald.service.hooks import read_bounded

log = logging.getLogger(__name__)

# A one-click body is 26 bytes, the page's forms a few fields: a few KiB is plenty.
MAX_FORM_BYTES = 4096
# Tokens are about 160 characters (`renderers/unsubscribe_tokens.py`); longer is not ours.
MAX_TOKEN_CHARS = 512
ONE_CLICK = ("List-Unsubscribe", "One-Click")


class SubscriptionLedger(Protocol):
    """What the pages need of the ledger (`SqlLedger`, `MemoryLedger`)."""

    async def unsubscribe(
        self, address: str, category: str, partner_id: str, source: str, actor: str = ...
    ) -> bool: ...

    async def resubscribe(
        self, address: str, category: str, partner_id: str, source: str, actor: str = ...
    ) -> bool: ...

    async def unsubscribed_scopes(self, address: str) -> list[str]: ...


class SubscriptionObserver(Protocol):
    """Counts what the pages do (`service/metrics.py`): categories and reasons, no address."""

    def unsubscribed(self, category: str, source: str) -> None: ...

    def resubscribed(self, category: str, source: str) -> None: ...

    def unsubscribe_token_rejected(self, reason: str) -> None: ...


class BadForm(Exception):
    """A body too large (413) or not a form this route reads (400)."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(status)


def parse_form(content_type: str, body: bytes) -> dict[str, str]:
    """The fields of an `application/x-www-form-urlencoded` or `multipart/form-data` body
    (RFC 8058 allows either); the first value of each name. BadForm(400) otherwise."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in ("", "application/x-www-form-urlencoded"):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadForm(400) from None
        return {name: values[0] for name, values in parse_qs(text).items()}
    if kind == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
        message = BytesParser(_class=EmailMessage, policy=policy.default).parsebytes(head + body)
        fields: dict[str, str] = {}
        for part in message.iter_parts() if message.is_multipart() else ():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields.setdefault(name, payload.decode("utf-8", "replace").strip())
        return fields
    raise BadForm(400)


async def read_form(request: web.Request) -> dict[str, str]:
    body = await read_bounded(request, MAX_FORM_BYTES)
    if body is None:
        raise BadForm(413)
    return parse_form(request.headers.get("Content-Type", ""), body)


def is_one_click(fields: Mapping[str, str]) -> bool:
    name, value = ONE_CLICK
    return fields.get(name) == value


class UnsubscribePages:
    """The routes' handlers over the token verifier, the ledger and the observer."""

    def __init__(
        self,
        tokens: UnsubscribeTokens,
        ledger: SubscriptionLedger,
        observer: SubscriptionObserver,
    ) -> None:
        self.tokens = tokens
        self.ledger = ledger
        self.observer = observer

    def verify(self, token: str) -> TokenSubject | None:
        """What the token names, or None (counted by reason) when it does not verify."""
        try:
            if len(token) > MAX_TOKEN_CHARS:
                raise InvalidUnsubscribeToken("malformed")
            return self.tokens.verify(token)
        except InvalidUnsubscribeToken as exc:
            self.observer.unsubscribe_token_rejected(exc.reason)
            log.info("unsubscribe token rejected", extra={"reason": exc.reason})
            return None

    async def unsubscribe(
        self, subject: TokenSubject, scope: UnsubscribeScope, source: str
    ) -> None:
        added = await self.ledger.unsubscribe(
            subject.address, scope.category, scope.partner_id, source
        )
        if added:
            self.observer.unsubscribed(scope.category, source)
        log.info(
            "unsubscribe",
            extra={"category": scope.category, "source": source, "changed": added},
        )

    async def post_unsubscribe(self, request: web.Request) -> web.Response:
        subject = self.verify(request.match_info["token"])
        if subject is None:
            return invalid_response()
        try:
            fields = await read_form(request)
        except BadForm as bad:
            return web.Response(status=bad.status, text="bad request")
        if is_one_click(fields):
            source = "one-click"
        elif fields.get("action") == "unsubscribe":
            source = "page"
        else:
            return web.Response(status=400, text="bad request")
        try:
            await self.unsubscribe(subject, subject.scope, source)
        except TransientError:
            return web.Response(status=503, text="unavailable, try again later")
        return web.Response(text="unsubscribed")

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/unsubscribe/{token}", self.post_unsubscribe)]


def invalid_response() -> web.Response:
    return web.Response(status=400, text="This link is not valid or has expired.")
