"""Soak: a steady stream of events through two `herald run` replicas on one PostgreSQL ledger,
with random faults injected (replica SIGKILL and SIGTERM, broker connections closed, SMTP down,
SMTP 451 bursts). Prints lost / duplicated / unexpected like the fault scenarios.

Usage: python bench/soak.py [--events 10000] [--rate 60] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults.harness import (  # noqa: E402
    HeraldProcess,
    Mailbox,
    account,
    herald_env,
    publish,
    quote_events,
    run_id,
    wait_for_mail,
)

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def rabbitmqctl(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    await process.wait()


async def admin(statement: str) -> None:
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def soak(events_total: int, rate: float, seed: int, workdir: Path) -> None:
    rng = random.Random(seed)
    vhost = f"herald-soak-{uuid.uuid4().hex[:8]}"
    await rabbitmqctl("add_vhost", vhost)
    await rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    database = f"herald_soak_{uuid.uuid4().hex[:8]}"
    await admin(f'CREATE DATABASE "{database}"')
    amqp_url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    database_url = f"postgresql://postgres@127.0.0.1:5432/{database}"
    mailbox = Mailbox(free_port())
    mailbox.start()
    replicas = [
        HeraldProcess(herald_env(amqp_url, mailbox.port, database_url, port), workdir, port)
        for port in (free_port(), free_port())
    ]
    faults: list[str] = []
    try:
        for replica in replicas:
            await replica.start()
            await replica.wait_ready()
        events = quote_events(events_total, run_id())
        started = time.monotonic()
        publishing = asyncio.create_task(publish(amqp_url, events, delay=1 / rate))
        while not publishing.done():
            await asyncio.sleep(rng.uniform(6, 12))
            if publishing.done():
                break
            fault = rng.choice(["sigkill", "sigterm", "close_connections", "smtp_down", "smtp_451"])
            faults.append(fault)
            replica = rng.choice(replicas)
            if fault == "sigkill":
                await replica.kill()
                await replica.start()
            elif fault == "sigterm":
                await replica.terminate()
                await replica.start()
            elif fault == "close_connections":
                await rabbitmqctl("close_all_connections", "soak")
            elif fault == "smtp_down":
                mailbox.stop()
                await asyncio.sleep(3)
                mailbox.start()
            else:
                mailbox.replies.extend(["451 4.3.0 try again later"] * 30)
        await publishing
        await wait_for_mail(mailbox, len(events), timeout=600)
        elapsed = time.monotonic() - started
        counts = account(events, mailbox)
        print(
            f"soak: {events_total} events at {rate}/s, 2 replicas, PostgreSQL ledger, "
            f"{elapsed:.0f} s, faults injected: {len(faults)} "
            f"({', '.join(f'{name} x{faults.count(name)}' for name in sorted(set(faults)))})"
        )
        print(counts.line("soak"))
    finally:
        for replica in replicas:
            if replica.process is not None and replica.process.returncode is None:
                await replica.terminate()
        mailbox.stop()
        await rabbitmqctl("delete_vhost", vhost)
        await admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as workdir:
        asyncio.run(soak(args.events, args.rate, args.seed, Path(workdir)))


if __name__ == "__main__":
    main()
