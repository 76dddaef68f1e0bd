"""The public HTTP listener on `HERALD_PUBLIC_HTTP_HOST`:`HERALD_PUBLIC_HTTP_PORT`: what faces
the internet (provider webhooks now, issue 19's unsubscribe pages next). A separate aiohttp app
and port from `HERALD_HTTP_PORT`, whose metrics and probes must not face the internet.

To add pages, give `build_public_app` another list of routes (and anything to close on
shutdown to `on_cleanup`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from aiohttp.abc import AbstractResolver

from herald.feedback.certificates import CertificateFetcher
from herald.feedback.ports import FeedbackLedger, FeedbackObserver
from herald.feedback.sendgrid import SendGridWebhook
from herald.feedback.ses import SesWebhook
from herald.feedback.sns import SnsVerifier
from herald.service.hooks import hook_routes
from herald.service.settings import ConfigFile, Settings

# The largest body any public route reads (SendGrid's batches); each route bounds its own.
PUBLIC_MAX_BODY_BYTES = 1_048_576

Cleanup = Callable[[web.Application], Awaitable[None]]


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
    ledger: FeedbackLedger,
    observer: FeedbackObserver,
    *,
    resolver: AbstractResolver | None = None,
) -> web.Application | None:
    """The public app from the settings, or None when `HERALD_PUBLIC_HTTP_PORT` is unset.
    `resolver`: how the SNS fetches find their host (tests point it at a local server)."""
    if settings.public_http_port is None:
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
    return build_public_app(hook_routes(ledger, observer, ses=ses, sendgrid=sendgrid), cleanups)
