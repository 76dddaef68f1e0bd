"""The public HTTP listener on `HERALD_PUBLIC_HTTP_HOST`:`HERALD_PUBLIC_HTTP_PORT`: what faces
the internet: provider webhooks (`service/hooks.py`) and, when `HERALD_PUBLIC_BASE_URL` and
`HERALD_UNSUBSCRIBE_KEYS` are set, the unsubscribe and preferences pages
(`service/unsubscribe_pages.py`). A separate aiohttp app and port from `HERALD_HTTP_PORT`, whose
metrics and probes must not face the internet.

To add pages, give `build_public_app` another list of routes (and anything to close on
shutdown to `on_cleanup`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from aiohttp import web
from aiohttp.abc import AbstractResolver

from herald.feedback.certificates import CertificateFetcher
from herald.feedback.ports import FeedbackLedger, FeedbackObserver
from herald.feedback.sendgrid import SendGridWebhook
from herald.feedback.ses import SesWebhook
from herald.feedback.sns import SnsVerifier
from herald.service.hooks import hook_routes
from herald.service.settings import ConfigFile, Settings
from herald.service.unsubscribe_pages import (
    SubscriptionLedger,
    SubscriptionObserver,
    UnsubscribePages,
)

log = logging.getLogger(__name__)

# The largest body any public route reads (SendGrid's batches); each route bounds its own.
PUBLIC_MAX_BODY_BYTES = 1_048_576

Cleanup = Callable[[web.Application], Awaitable[None]]


class PublicLedger(FeedbackLedger, SubscriptionLedger, Protocol):
    """What the public routes write: reports after the 250, unsubscribes."""


class PublicObserver(FeedbackObserver, SubscriptionObserver, Protocol):
    """What the public routes count."""


def build_public_app(
    routes: Iterable[web.AbstractRouteDef], on_cleanup: Iterable[Cleanup] = ()
) -> web.Application:
    app = web.Application(client_max_size=PUBLIC_MAX_BODY_BYTES)
    app.add_routes(routes)
    app.on_cleanup.extend(on_cleanup)
    return app


def public_app_for(
    settings: Settings,
    config: ConfigFile,
    ledger: PublicLedger,
    observer: PublicObserver,
    *,
    resolver: AbstractResolver | None = None,
) -> web.Application | None:
    """The public app from the settings, or None when `HERALD_PUBLIC_HTTP_PORT` is unset.
    `resolver`: how the SNS fetches find their host (tests point it at a local server)."""
    tokens = settings.unsubscribe_tokens
    if settings.public_http_port is None:
        if tokens is not None:
            # The emails' links would lead nowhere; the settings may be meant for another
            # replica's listener, so a warning rather than a refusal to start.
            log.warning(
                "HERALD_UNSUBSCRIBE_KEYS is set but HERALD_PUBLIC_HTTP_PORT is not: "
                "this process serves no unsubscribe pages"
            )
        return None
    cleanups: list[Cleanup] = []
    ses = None
    if config.feedback.ses is not None:
        fetcher = CertificateFetcher(config.feedback.ses.ca_file, resolver=resolver)
        ses = SesWebhook(SnsVerifier(config.feedback.ses.topics, fetcher))

        async def close_fetcher(_: web.Application) -> None:
            await fetcher.close()

        cleanups.append(close_fetcher)
    key = settings.sendgrid_key
    sendgrid = None if key is None else SendGridWebhook(key)
    routes: list[web.RouteDef] = hook_routes(ledger, observer, ses=ses, sendgrid=sendgrid)
    if tokens is not None and settings.public_base_url is not None:
        routes += UnsubscribePages(
            tokens, ledger, observer, config.recipients, config.brand
        ).routes()
    return build_public_app(routes, cleanups)
