"""The unsubscribe routes of the public listener (issue 19), added when
`HERALD_PUBLIC_BASE_URL` and `HERALD_UNSUBSCRIBE_KEYS` are set:

- `POST /unsubscribe/{token}`: with the form field `List-Unsubscribe=One-Click` (RFC 8058, what
  mail clients send) unsubscribes at once (source `one-click`) and answers 200 `unsubscribed`;
  with `action=unsubscribe` (the page's button) unsubscribes (source `page`) and answers the
  confirmation page. Anything else is 400. Repeating changes nothing.
- `GET /unsubscribe/{token}`: a page naming the list that will stop, with one button (a form
  POST to the same URL). A GET never changes anything: scanners and previews fetch links.
- `GET /preferences/{token}`: each list of the token's partner this address is on (the token's
  own category, and every configured `recipients[partner][category].emails` list holding the
  address) with its state and a button to turn it off or back on.
- `POST /preferences/{token}`: `category` (one the page shows) and `state` (`off`/`on`): one
  change (source `page`), then 303 back to the GET (Post/Redirect/Get).

Pages are rendered by `renderers/pages.py` (language from `?lang=` or `Accept-Language`, the
partner's brand). Every page answer carries a strict Content-Security-Policy (no script, the
one style element by nonce, forms only to the page's own origin, no framing), `nosniff`,
`Referrer-Policy: no-referrer` (the token is in the URL) and `Cache-Control: no-store`.

A token that does not verify gets the same plain 400 page whatever the reason (counted by reason
in `herald_unsubscribe_token_rejected_total`); a body above `MAX_FORM_BYTES` is 413; the ledger
unreachable is 503 (nothing changed, the client may try again). One log line per change, never
an address.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Protocol
from urllib.parse import parse_qs

from aiohttp import web

from herald.catalog.config import CATEGORIES, RecipientsConfig
from herald.catalog.optional import UnsubscribeScope
from herald.errors import TransientError
from herald.ledger.records import normalise_address
from herald.renderers.branding import BrandConfig
from herald.renderers.pages import PageRenderer, choose_locale, page_brand
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


@dataclass(frozen=True, slots=True)
class ListState:
    category: str
    subscribed: bool


def security_headers(nonce: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
    }


def text_response(status: int, text: str) -> web.Response:
    """A short plain answer (one-click, malformed form) with the same headers as a page."""
    return web.Response(status=status, text=text, headers=security_headers("none"))


class UnsubscribePages:
    """The routes' handlers over the token verifier, the ledger, the observer and the config
    file's recipients (which lists a partner has) and brands."""

    def __init__(
        self,
        tokens: UnsubscribeTokens,
        ledger: SubscriptionLedger,
        observer: SubscriptionObserver,
        recipients: RecipientsConfig | None = None,
        brands: BrandConfig | None = None,
        renderer: PageRenderer | None = None,
    ) -> None:
        self.tokens = tokens
        self.ledger = ledger
        self.observer = observer
        self.recipients = recipients or {}
        self.brands = brands or BrandConfig()
        self.renderer = renderer or PageRenderer()

    # -- answers

    def page(
        self,
        request: web.Request,
        name: str,
        partner_id: str | None,
        status: int = 200,
        **context: object,
    ) -> web.Response:
        locale = choose_locale(request.query.get("lang"), request.headers.get("Accept-Language"))
        nonce = secrets.token_urlsafe(16)
        html = self.renderer.render(
            name, locale, page_brand(self.brands, partner_id), nonce, **context
        )
        return web.Response(
            status=status,
            text=html,
            content_type="text/html",
            charset="utf-8",
            headers=security_headers(nonce),
        )

    def invalid(self, request: web.Request) -> web.Response:
        return self.page(request, "invalid", None, status=400)

    def unavailable(self, request: web.Request, partner_id: str) -> web.Response:
        return self.page(request, "unavailable", partner_id, status=503)

    @staticmethod
    def keep_lang(request: web.Request) -> str:
        """`?lang=..` when the request named one, for the links and redirects onwards."""
        lang = request.query.get("lang")
        return f"?lang={lang}" if lang in ("en", "de") else ""

    # -- the work

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

    async def unsubscribe(self, subject: TokenSubject, category: str, source: str) -> None:
        partner = subject.scope.partner_id
        added = await self.ledger.unsubscribe(subject.address, category, partner, source)
        if added:
            self.observer.unsubscribed(category, source)
        log.info("unsubscribe", extra={"category": category, "source": source, "changed": added})

    async def resubscribe(self, subject: TokenSubject, category: str, source: str) -> None:
        partner = subject.scope.partner_id
        removed = await self.ledger.resubscribe(subject.address, category, partner, source)
        if removed:
            self.observer.resubscribed(category, source)
        log.info("resubscribe", extra={"category": category, "source": source, "changed": removed})

    def categories(self, subject: TokenSubject) -> list[str]:
        """The token's category and each configured list of its partner holding the address,
        in NOTIFICATIONS.md 3.3's order."""
        address = normalise_address(subject.address)
        lists = self.recipients.get(subject.scope.partner_id, {})
        shown = {subject.scope.category}
        for category, entry in lists.items():
            if any(normalise_address(email) == address for email in entry.emails):
                shown.add(category)
        return [c for c in CATEGORIES if c in shown] + sorted(shown - set(CATEGORIES))

    async def states(self, subject: TokenSubject) -> list[ListState]:
        off = set(await self.ledger.unsubscribed_scopes(subject.address))
        partner = subject.scope.partner_id
        return [
            ListState(category, UnsubscribeScope(category, partner).scope not in off)
            for category in self.categories(subject)
        ]

    # -- the handlers

    async def get_unsubscribe(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        subject = self.verify(token)
        if subject is None:
            return self.invalid(request)
        return self.page(
            request,
            "unsubscribe",
            subject.scope.partner_id,
            category=subject.scope.category,
            preferences_path=f"../preferences/{token}{self.keep_lang(request)}",
        )

    async def post_unsubscribe(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        subject = self.verify(token)
        if subject is None:
            return self.invalid(request)
        try:
            fields = await read_form(request)
        except BadForm as bad:
            return text_response(bad.status, "bad request")
        if is_one_click(fields):
            source = "one-click"
        elif fields.get("action") == "unsubscribe":
            source = "page"
        else:
            return text_response(400, "bad request")
        try:
            await self.unsubscribe(subject, subject.scope.category, source)
        except TransientError:
            if source == "one-click":
                return text_response(503, "unavailable, try again later")
            return self.unavailable(request, subject.scope.partner_id)
        if source == "one-click":
            return text_response(200, "unsubscribed")
        return self.page(
            request,
            "unsubscribed",
            subject.scope.partner_id,
            category=subject.scope.category,
            preferences_path=f"../preferences/{token}{self.keep_lang(request)}",
        )

    async def get_preferences(self, request: web.Request) -> web.Response:
        subject = self.verify(request.match_info["token"])
        if subject is None:
            return self.invalid(request)
        try:
            lists = await self.states(subject)
        except TransientError:
            return self.unavailable(request, subject.scope.partner_id)
        return self.page(request, "preferences", subject.scope.partner_id, lists=lists)

    async def post_preferences(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        subject = self.verify(token)
        if subject is None:
            return self.invalid(request)
        try:
            fields = await read_form(request)
        except BadForm as bad:
            return text_response(bad.status, "bad request")
        category, state = fields.get("category"), fields.get("state")
        if category not in self.categories(subject) or state not in ("on", "off"):
            return text_response(400, "bad request")
        try:
            if state == "off":
                await self.unsubscribe(subject, category, "page")
            else:
                await self.resubscribe(subject, category, "page")
        except TransientError:
            return self.unavailable(request, subject.scope.partner_id)
        return web.Response(
            status=303,
            headers={
                **security_headers("none"),
                "Location": f"{token}{self.keep_lang(request)}",
            },
        )

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/unsubscribe/{token}", self.get_unsubscribe),
            web.post("/unsubscribe/{token}", self.post_unsubscribe),
            web.get("/preferences/{token}", self.get_preferences),
            web.post("/preferences/{token}", self.post_preferences),
        ]
