"""The straightforward pipelines Herald is measured against (issue 8), run as their own process:

    python bench/straightforward.py --variant aiopika|faststream --url AMQP --queue Q
        --count N --smtp-port P

Both do what a first implementation does: validate the event with the same pydantic schemas,
render the same two emails with the same jinja2 templates and CSS inlining, build each as an
`EmailMessage`, send it over one reused aiosmtplib connection, and ack after sending.
No ledger, no dedup.
Prints `rate <events per second>` once N events are done.

The `floor` variants are not baselines: they bound what Herald itself can reach on this machine.
`floor` runs Herald's own fast parts (its renderer writing the MIME bytes directly, its pool of
8 aiosmtplib connections, prefetch 256, uvloop, the emails of an event sent concurrently) with
no ledger, no dedup and no metrics; `floor-nosmtp` also skips SMTP (validate, plan, render,
ack). They add `cpu_us_per_email <n>` (this process's CPU time per email).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import aiosmtplib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from herald.catalog.plan import plan_event  # noqa: E402
from herald.catalog.registry import load_catalog  # noqa: E402
from herald.consumers.delivery import InboundMessage  # noqa: E402
from herald.renderers.branding import BrandConfig  # noqa: E402
from herald.renderers.email import EmailRenderer  # noqa: E402
from herald.renderers.environment import Templates  # noqa: E402
from herald.renderers.styles import EmailStyles  # noqa: E402
from herald.schemas.decode import decode  # noqa: E402
from herald.schemas.envelope import Event  # noqa: E402
from herald.service.settings import Settings  # noqa: E402

CATALOG = load_catalog()
SETTINGS = Settings()
TEMPLATES = Templates()
BRANDS = BrandConfig()
RENDERER = EmailRenderer(TEMPLATES, BRANDS, SETTINGS.sender)  # for its template context
STYLES = EmailStyles(TEMPLATES.stylesheet)  # the same CSS inlining as Herald's


def event_of(body: bytes, routing_key: str, message_id: str | None) -> Event:
    decoded = decode(
        InboundMessage(
            body=body,
            routing_key=routing_key,
            content_type="application/cloudevents+json",
            content_encoding=None,
            message_id=message_id,
            queue="bench",
        )
    )
    assert isinstance(decoded, Event)
    return decoded


async def consume(
    url: str, queue_name: str, prefetch: int, on_message: Any, done: asyncio.Event
) -> None:
    """Consume `queue_name` with `on_message` until `done` is set."""
    import aio_pika

    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.get_queue(queue_name)
        await queue.consume(on_message)
        await done.wait()


def emails(body: bytes, routing_key: str, message_id: str | None) -> list[EmailMessage]:
    decoded = event_of(body, routing_key, message_id)
    messages = []
    for delivery in plan_event(decoded, CATALOG, {}).deliveries:
        context = RENDERER.context(decoded, delivery, dict(delivery.extras))
        rendered = TEMPLATES.render(delivery.spec.id, context, delivery.recipient.locale)
        html = STYLES.inline(rendered.html, BRANDS.brand_for(decoded.data))
        message = EmailMessage()
        message["From"] = str(SETTINGS.sender)
        message["To"] = delivery.recipient.email
        message["Subject"] = rendered.subject
        message["Message-ID"] = make_msgid(domain="bench.invalid")
        message.set_content(rendered.text)
        message.add_alternative(html, subtype="html")
        messages.append(message)
    return messages


class OneConnection:
    """One reused aiosmtplib connection; sends take turns."""

    def __init__(self, port: int) -> None:
        self._client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        self._lock = asyncio.Lock()

    async def send(self, message: EmailMessage) -> None:
        async with self._lock:
            if not self._client.is_connected:
                await self._client.connect()
            await self._client.send_message(message)


async def run_aiopika(args: argparse.Namespace) -> float:
    import aio_pika

    smtp = OneConnection(args.smtp_port)
    done = asyncio.Event()
    handled = 0
    started = 0.0

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal handled, started
        if not started:
            started = time.perf_counter()
        for email in emails(message.body, args.event_type, message.message_id):
            await smtp.send(email)
        await message.ack()
        handled += 1
        if handled == args.count:
            done.set()

    await consume(args.url, args.queue, args.prefetch, on_message, done)
    return args.count / (time.perf_counter() - started)


async def run_faststream(args: argparse.Namespace) -> float:
    from faststream.rabbit import RabbitBroker, RabbitMessage, RabbitQueue

    smtp = OneConnection(args.smtp_port)
    # Default ack policy (ack after the handler returns); per-message logging off, as for
    # the aio-pika variant.
    broker = RabbitBroker(args.url, logger=None)
    done = asyncio.Event()
    handled = 0
    started = 0.0
    queue = RabbitQueue(args.queue, declare=False)  # preloaded by the bench

    @broker.subscriber(queue)
    async def on_message(body: Any, message: RabbitMessage) -> None:
        nonlocal handled, started
        if not started:
            started = time.perf_counter()
        raw = message.raw_message
        for email in emails(raw.body, args.event_type, raw.message_id):
            await smtp.send(email)
        handled += 1
        if handled == args.count:
            done.set()

    async with broker:
        await broker.start()
        await done.wait()
    return args.count / (time.perf_counter() - started)


async def run_floor(args: argparse.Namespace) -> float:
    import aio_pika

    from herald.senders.smtp import SmtpOptions, SmtpSender

    smtp = SmtpSender(SmtpOptions(port=args.smtp_port, pool_size=8))
    done = asyncio.Event()
    handled = 0
    emails_sent = 0
    started = 0.0
    cpu_started = 0.0

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal handled, started, cpu_started, emails_sent
        if not started:
            started, cpu_started = time.perf_counter(), time.process_time()
        decoded = event_of(message.body, args.event_type, message.message_id)
        rendered = [
            RENDERER.render(decoded, delivery, dict(delivery.extras))
            for delivery in plan_event(decoded, CATALOG, {}).deliveries
        ]
        if args.variant == "floor":
            await asyncio.gather(*(smtp.send(email) for email in rendered))
        emails_sent += len(rendered)
        await message.ack()
        handled += 1
        if handled == args.count:
            done.set()

    await consume(args.url, args.queue, 256, on_message, done)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    await smtp.close()
    print(f"cpu_us_per_email {cpu / emails_sent * 1e6:.0f}", flush=True)
    return args.count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--variant", choices=("aiopika", "faststream", "floor", "floor-nosmtp"), required=True
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--prefetch", type=int, default=64)
    # Preloaded through the default exchange, so the routing key is the queue's name.
    parser.add_argument("--event-type", default="orders.order.placed")
    args = parser.parse_args()
    if args.variant.startswith("floor"):
        import uvloop

        print(f"rate {uvloop.run(run_floor(args)):.1f}", flush=True)
        return
    runner = run_aiopika if args.variant == "aiopika" else run_faststream
    print(f"rate {asyncio.run(runner(args)):.1f}", flush=True)


if __name__ == "__main__":
    main()
