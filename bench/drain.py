"""Backlog drain benchmark: Herald end to end versus the broker's ack-only ceiling.

Pre-loads N orders events (each one produces two emails) into a fresh vhost, then times
  1. an ack-only aio-pika consumer draining N messages from a quorum queue (the ceiling), and
  2. `herald run` (a real subprocess: validation, ledger, dedup, render, SMTP, ack after send)
     draining the same N from herald.orders into postfix's `smtp-sink`,
and prints both rates and their ratio. Usage: python bench/drain.py [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import aio_pika

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from herald.consumers.topology import EVENTS_EXCHANGE, declare  # noqa: E402
from herald.schemas.examples import load_example  # noqa: E402

SMTP_SINK_PORT = 2525
HTTP_PORT = 9470


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True)


def ensure_smtp_sink() -> str:
    path = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(path).exists():
        print("installing postfix for smtp-sink ...", flush=True)
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "postfix"],
            check=True,
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    return path


def events(count: int) -> list[bytes]:
    template = load_example("orders.order.placed")
    bodies = []
    for index in range(count):
        template["id"] = f"bench-{index}-{uuid.uuid4().hex[:8]}"
        bodies.append(json.dumps(template).encode())
    return bodies


async def publish(url: str, bodies: list[bytes], routing_key: str, exchange_name: str) -> None:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = (
            channel.default_exchange
            if exchange_name == ""
            else await channel.get_exchange(exchange_name)
        )
        window = 500
        for start in range(0, len(bodies), window):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            body=body,
                            content_type="application/cloudevents+json",
                            message_id=json.loads(body)["id"],
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=routing_key,
                        timeout=30,
                    )
                    for body in bodies[start : start + window]
                )
            )


async def ceiling(url: str, bodies: list[bytes]) -> float:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            "bench.ceiling", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.purge()
        await publish(url, bodies, "bench.ceiling", "")
        await channel.set_qos(prefetch_count=256)
        done = asyncio.Event()
        received = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal received
            await message.ack()
            received += 1
            if received == len(bodies):
                done.set()

        started = time.perf_counter()
        await queue.consume(on_message)
        await done.wait()
        elapsed = time.perf_counter() - started
        await queue.delete(if_unused=False, if_empty=False)
    return len(bodies) / elapsed


def metric_value(name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{HTTP_PORT}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_ready(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("herald exited during start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{HTTP_PORT}/readyz", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("herald did not become ready")


async def preload(url: str, bodies: list[bytes]) -> None:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        await declare(await connection.channel())
    await publish(url, bodies, "orders.order.placed", EVENTS_EXCHANGE)


def herald(
    url: str, bodies: list[bytes], workdir: Path, database_url: str | None
) -> tuple[float, float]:
    asyncio.run(preload(url, bodies))
    env = {
        **os.environ,
        "HERALD_AMQP_URL": url,
        "HERALD_SMTP_HOST": "127.0.0.1",
        "HERALD_SMTP_PORT": str(SMTP_SINK_PORT),
        "HERALD_DATABASE_URL": database_url or f"sqlite:///{workdir}/bench.db",
        "HERALD_HTTP_PORT": str(HTTP_PORT),
        "HERALD_LOG_LEVEL": "WARNING",
        "HERALD_PREFETCH": os.environ.get("HERALD_PREFETCH", "256"),
        "HERALD_SMTP_POOL_SIZE": os.environ.get("HERALD_SMTP_POOL_SIZE", "8"),
    }
    process = subprocess.Popen([str(ROOT / ".venv/bin/herald"), "run"], env=env, cwd=workdir)
    try:
        wait_ready(process)
        if os.environ.get("BENCH_PROFILE"):  # a py-spy flame graph of the drain's first seconds
            subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--nonblocking",
                    "--pid",
                    str(process.pid),
                    "--duration",
                    "10",
                    "-f",
                    os.environ.get("BENCH_PROFILE_FORMAT", "speedscope"),
                    "-o",
                    os.environ["BENCH_PROFILE"],
                ],
                stdout=subprocess.DEVNULL,
            )
        started = time.perf_counter()
        # Polled every 0.2 s: rendering /metrics is not free, and scraping it every 50 ms
        # would measure the scrape (Prometheus scrapes every 15 s).
        while metric_value('herald_events_processed_total{domain="orders"}') < len(bodies):
            if process.poll() is not None:
                raise RuntimeError("herald exited while draining")
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        with urllib.request.urlopen(f"http://127.0.0.1:{HTTP_PORT}/metrics", timeout=5) as reply:
            for line in reply.read().decode().splitlines():
                if line.startswith(("herald_notifications_total", "herald_events_requeued_total")):
                    print("  ", line)
        sent = metric_value(
            'herald_notifications_total{domain="orders",notification="order_confirmation_new",'
            'outcome="sent"}'
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    return len(bodies) / elapsed, sent / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument(
        "--database-url", help="ledger URL (default: a fresh SQLite file); e.g. a PostgreSQL DB"
    )
    args = parser.parse_args()
    sink = ensure_smtp_sink()
    vhost = f"herald-bench-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    sink_process = subprocess.Popen(
        [sink, "-u", "postfix", f"127.0.0.1:{SMTP_SINK_PORT}", "1024"],
        stdout=subprocess.DEVNULL,
    )
    try:
        bodies = events(args.events)
        ceiling_rate = asyncio.run(ceiling(url, bodies))
        with tempfile.TemporaryDirectory() as workdir:
            event_rate, email_rate = herald(url, bodies, Path(workdir), args.database_url)
    finally:
        sink_process.terminate()
        rabbitmqctl("delete_vhost", vhost)
    print(f"events:                       {args.events} (2 emails each)")
    print(f"ledger:                       {args.database_url or 'SQLite'}")
    print(f"ack-only aio-pika ceiling:    {ceiling_rate:8.0f} events/s")
    print(f"herald run, end to end:       {event_rate:8.0f} events/s ({email_rate:.0f} emails/s)")
    print(f"ratio herald / ceiling:       {event_rate / ceiling_rate:8.1%}")


if __name__ == "__main__":
    main()
