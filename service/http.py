"""`GET /metrics`, `GET /healthz` (the process is alive) and `GET /readyz` (every domain
consumer is attached and the ledger is usable; a 503 names what is not) on `HERALD_HTTP_PORT`."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from herald.errors import CannotListen
from herald.service.metrics import Metrics


def build_app(
    metrics: Metrics,
    ready: Callable[[], bool],
    problems: Callable[[], list[str]] = list,
) -> web.Application:
    """`ready`: the consumers are attached (`herald_consumers_ready`); `problems`: anything
    else that makes the replica unready, each named (e.g. the ledger)."""

    async def metrics_endpoint(_: web.Request) -> web.Response:
        metrics.consumers_ready.set(1 if ready() else 0)
        return web.Response(
            body=generate_latest(metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_: web.Request) -> web.Response:
        reasons = problems()
        if not ready():
            reasons.insert(0, "consumers: not attached to every domain queue")
        if not reasons:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready", "reasons": reasons}, status=503)

    app = web.Application()
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_http(
    app: web.Application,
    host: str,
    port: int,
    listener: str = "metrics and probes",
    setting: str = "HERALD_HTTP_PORT",
) -> web.AppRunner:
    """Serve `app` on host:port; CannotListen (naming `listener` and the `setting` of the port)
    when it cannot bind: in use, or no such address here."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise CannotListen.on(listener, host, port, exc, setting) from exc
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (useful when configured as 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise RuntimeError("the HTTP server is not listening")
