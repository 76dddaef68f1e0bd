"""Soak (FAULTS.md row 40): 10,000 events through two `herald run` replicas on one fresh
PostgreSQL ledger for 10 minutes, with random faults of rows 1-6, 11-12 and 16-21, ending in a
verdict: PASS (exit 0) or FAIL (exit 1) with the reasons.

Load: the events are published in bursts of `--burst` at `--rate` (200 at 200/s), one burst
every `duration / bursts` seconds (50 bursts 12 s apart for the defaults: 10 minutes at an
average of 16.7/s with 200/s peaks, and never a fault without traffic), straight to a private
RabbitMQ node (tests/faults/broker_node.py; the shared broker on 5672 is never touched), each an
`orders.quote.created` to its own recipient, so exactly one email each; plus a few malformed
events that must end in the dead-letter queue. Herald reaches the broker through one TCP proxy
per replica (tests/faults/proxy.py) and sends to one mailbox per replica (an aiosmtpd server of
the harness with AUTH), so every copy the server takes is known to come from one replica.

Faults: one at a time, at random (rounds of every kind in a shuffled order, random gaps of 2-8
s), from the first seconds until the final window (the last 60 s, kept fault-free); after each
the soak waits until both replicas answer /readyz 200 again (its time to recover). A fault that
only bites on traffic (4xx or 5xx replies, drops after DATA, 535, slow greetings) starts when it
meets its first message. See bench/soak_faults.py.

Verdict (bench/soak_report.py): lost = 0; unexpected = 0; every duplicate shares its first
copy's Message-ID and comes from a documented window (the server dropped the connection after
taking the message, or its replica was SIGKILLed within 5 s after the server took it); recipients
refused with 5xx are `failed` rows in the ledger and nothing else is; every Herald queue empty
at the end, the dead-letter queue holding exactly the malformed events (a second copy of one is
reported, not failed: the copy is at-least-once); RSS of each process that lived 120 s or more
(3/4 of a shorter run): median of its last fifth <= 1.3 x the median of its second fifth; latency
(publish -> the server taking the message) p99 of the final fault-free window <= --p99-bound,
and each minute's p99 within what its faults explain (the bound + the longest overlapping
fault's time to recover + 5 s of retry and backlog slack, + 15 s of claim lease when a process
was stopped); SIGTERM ends in exit 0 and no replica exits by itself.

Usage: python bench/soak.py [--duration 600] [--events 10000] [--rate 200] [--seed 1]
       python bench/soak.py --quick        # 90 s, 2,000 events: does it work
Herald's logs and the soak's report stay in build/soak/<run>/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import random
import signal
import socket
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from soak_faults import KINDS, Fault, inject  # noqa: E402
from soak_mail import MailService  # noqa: E402
from soak_report import Config, Observed, analyse  # noqa: E402
from soak_rig import Outgoing, Publisher, Replica, Rig, event_body  # noqa: E402

from tests.faults.broker_node import BrokerNode  # noqa: E402
from tests.faults.harness import dead_letters, herald_env, quote_events, run_id  # noqa: E402
from tests.faults.proxy import TcpProxy  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REPLICAS = 2
RECOVER_WITHIN = 180.0  # seconds a fault may take to recover before the soak calls it stuck
SAMPLE_EVERY = 2.0  # seconds between RSS samples


@dataclass
class Plan:
    config: Config
    kinds: list[str]
    heartbeat: int
    drain_timeout: float
    run_dir: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def say(started: float, text: str) -> None:
    print(f"[{time.time() - started:7.1f} s] {text}", flush=True)


async def admin(statement: str) -> None:
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def schedule(plan: Plan, events: list[dict[str, Any]], malformed: list[str]) -> list[Outgoing]:
    """Bursts of `burst` events at `rate`, spread evenly over the duration; the malformed
    events at random moments in between."""
    config = plan.config
    rng = random.Random(config.seed + 1)
    interval = config.duration / config.bursts
    outgoing = [
        Outgoing(
            document["id"],
            event_body(document),
            document["type"],
            (index // config.burst) * interval + (index % config.burst) / config.rate,
        )
        for index, document in enumerate(events)
    ]
    last = outgoing[-1].offset if outgoing else 0.0
    outgoing += [
        Outgoing(
            message_id,
            b'{"specversion": "1.0", "id": "' + message_id.encode(),
            "orders.quote.created",
            rng.uniform(0, last),
        )
        for message_id in malformed
    ]
    return sorted(outgoing, key=lambda item: item.offset)


async def queue_depths(broker: BrokerNode) -> dict[str, tuple[int, int, int]]:
    listed = await broker.ctl(
        "list_queues",
        "name",
        "messages",
        "messages_ready",
        "messages_unacknowledged",
        "--no-table-headers",
    )
    depths = {}
    for line in listed.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0].startswith("herald."):
            depths[parts[0]] = (int(parts[1]), int(parts[2]), int(parts[3]))
    return depths


async def watch(rig: Rig, started: float, stop: asyncio.Event) -> None:
    """Sample RSS; restart a replica that exited by itself, as a supervisor would."""
    while not stop.is_set():
        for replica in rig.replicas:
            replica.sample_rss()
            crashed = replica.check_exit()
            if crashed is not None:
                say(started, f"{crashed.name} exited by itself (exit {crashed.exit_code}): restart")
                await replica.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_EVERY)


async def inject_faults(
    plan: Plan, rig: Rig, t0: float, started: float, faults: list[Fault]
) -> None:
    config = plan.config
    rng = random.Random(config.seed)
    first = min(15.0, config.duration / 10)
    last = config.duration - config.final_window - min(30.0, config.duration / 6)
    await asyncio.sleep(max(0.0, t0 + first - time.time()))
    bag: list[str] = []
    for _ in range(10_000):
        gap = rng.uniform(2, 8)
        if time.time() + gap - t0 > last:
            return
        await asyncio.sleep(gap)  # the pause between faults is itself random
        if not bag:  # every kind once per round, in a random order: none left out by chance
            bag = rng.sample(plan.kinds, len(plan.kinds))
        kind = bag.pop()
        fault = await inject(rig, rng, kind, RECOVER_WITHIN)
        faults.append(fault)
        recovered = (
            f"recovered in {fault.recovery_seconds:.1f} s"
            if fault.recovery_seconds is not None
            else f"NOT ready within {RECOVER_WITHIN:.0f} s: no more faults"
        )
        say(
            started,
            f"fault {len(faults):>2} {kind} (row {fault.row}) {fault.target}: {fault.detail}; "
            f"{recovered}",
        )
        if fault.recovered is None:
            return


async def drain(plan: Plan, rig: Rig, recipients: set[str], published_at: float) -> float | None:
    """Wait until every recipient got its email or was refused for good and every Herald queue
    is empty (nothing in flight can send anything more); seconds it took, or None."""
    deadline = time.monotonic() + plan.drain_timeout
    log = rig.mail.log
    while time.monotonic() < deadline:
        if recipients <= log.accepted | set(log.refused):
            depths = await queue_depths(rig.broker)
            if depths and all(
                messages == 0
                for name, (messages, _, _) in depths.items()
                if name != "herald.dead-letter"
            ):
                return time.time() - published_at
        await asyncio.sleep(1)
    return None


async def ledger_rows(database_url: str) -> tuple[dict[str, str], Counter[str]]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT recipient, status, detail FROM deliveries")
    finally:
        await connection.close()
    failed = {row["recipient"]: row["detail"] or "" for row in rows if row["status"] == "failed"}
    return failed, Counter(row["status"] for row in rows)


async def soak(plan: Plan) -> int:
    config = plan.config
    started = time.time()
    run = run_id()
    database = f"herald_soak_{run}"
    database_url = f"postgresql://postgres@127.0.0.1:5432/{database}"
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    broker = BrokerNode(free_port(), free_port())
    mail = MailService.create([free_port() for _ in range(REPLICAS)])
    proxies = [TcpProxy(free_port(), broker.port) for _ in range(REPLICAS)]
    replicas: list[Replica] = []
    tasks: list[asyncio.Task[Any]] = []
    database_made = False
    publisher: Publisher | None = None
    try:
        say(started, f"private RabbitMQ node {broker.name} on {broker.port}: starting")
        await broker.start()
        await admin(f'CREATE DATABASE "{database}"')
        database_made = True
        mail.start()
        for proxy in proxies:
            await proxy.start()
        for index, (proxy, mailbox) in enumerate(zip(proxies, mail.mailboxes, strict=True)):
            port = free_port()
            env = herald_env(
                f"amqp://guest:guest@127.0.0.1:{proxy.port}/?heartbeat={plan.heartbeat}",
                mailbox.port,
                database_url,
                port,
                HERALD_SMTP_USERNAME="herald",
                HERALD_SMTP_PASSWORD="soak-password",  # noqa: S106 (the soak's own mail server)
                HERALD_SMTP_AUTH_PROBE_SECONDS="0.5",
            )
            replicas.append(Replica(index, env, plan.run_dir, port))
        for replica in replicas:
            await replica.start()
        rig = Rig(broker, proxies, mail, replicas, plan.heartbeat)
        if await rig.wait_ready(120) is None:
            raise RuntimeError(f"Herald did not become ready; see {plan.run_dir}")
        publisher = Publisher(broker.url)
        await publisher.open()

        events = quote_events(config.events, run)
        malformed = [f"{run}-malformed-{index}" for index in range(config.malformed)]
        outgoing = schedule(plan, events, malformed)
        say(
            started,
            f"ready: {REPLICAS} replicas, ledger {database}, heartbeat {plan.heartbeat} s; "
            f"publishing {config.events:,} events in {config.bursts} bursts of {config.burst} "
            f"at {config.rate:.0f}/s over {config.duration:.0f} s, seed {config.seed}",
        )
        faults: list[Fault] = []
        stop_watching = asyncio.Event()
        t0 = time.time()
        publishing = asyncio.create_task(publisher.run(outgoing))
        injecting = asyncio.create_task(inject_faults(plan, rig, t0, started, faults))
        watching = asyncio.create_task(watch(rig, started, stop_watching))
        tasks += [publishing, injecting, watching]
        await publishing
        published_at = time.time()
        say(started, f"published ({publisher.republished:,} publish retries)")
        await injecting
        await asyncio.sleep(max(0.0, t0 + config.duration - time.time()))  # the full window
        recipients = {event["data"]["quote"]["recipient"]["email"] for event in events}
        drained_in = await drain(plan, rig, recipients, published_at)
        say(started, "drained" if drained_in is not None else "NOT drained: judging as is")
        queues = await queue_depths(broker)
        stop_watching.set()
        await watching
        for replica in replicas:
            await replica.terminate("end of soak")
        parked = [
            (str(item["message_id"]), str(item["headers"].get("x-reject-reason", "")))
            for item in await dead_letters(broker.url)
        ]
        failed, statuses = await ledger_rows(database_url)
        seen = Observed(
            t0=t0,
            recipients={
                event["id"]: event["data"]["quote"]["recipient"]["email"] for event in events
            },
            malformed_ids=set(malformed),
            first_attempt=publisher.first_attempt,
            unconfirmed=publisher.given_up,
            republished=publisher.republished,
            copies=list(mail.log.copies),
            refused=dict(mail.log.refused),
            ledger_failed=failed,
            ledger_status=statuses,
            faults=faults,
            lifetimes=[lifetime for replica in replicas for lifetime in replica.lifetimes],
            queues=queues,
            dead_letters=parked,
            drained_in=drained_in,
            total_seconds=time.time() - started,
        )
        result = analyse(config, seen)
        header = [
            "",
            f"Herald soak {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, seed {config.seed}: "
            f"{config.events:,} events in {config.bursts} bursts of {config.burst} at "
            f"{config.rate:.0f}/s over {config.duration:.0f} s, {REPLICAS} replicas, PostgreSQL "
            f"ledger, private RabbitMQ node, heartbeat {plan.heartbeat} s",
            "fault timeline (seconds after the first publish)",
            *(
                f"  {f.started - t0:6.1f}  {f.kind:<22} {f.target:<26} {f.detail}; "
                + (
                    f"ready after {f.recovery_seconds:.1f} s"
                    if f.recovery_seconds is not None
                    else "NOT ready"
                )
                for f in faults
            ),
        ]
        verdict = ["", "verdict: PASS" if not result.reasons else "verdict: FAIL"]
        verdict += [f"  - {reason}" for reason in result.reasons]
        verdict.append(f"logs: {plan.run_dir}")
        text = "\n".join([*header, *result.lines, *verdict])
        print(text, flush=True)
        (plan.run_dir / "report.txt").write_text(text + "\n")
        return 0 if not result.reasons else 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if publisher is not None:
            with contextlib.suppress(Exception):
                await publisher.close()
        for replica in replicas:
            with contextlib.suppress(Exception):
                if replica.current is not None:
                    await replica.terminate("end of soak")
        for proxy in proxies:
            proxy.resume()
            await proxy.stop()
        mail.stop()
        await asyncio.to_thread(broker.stop)
        if database_made:
            await admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def parse(argv: list[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, help="seconds of load and faults (600)")
    parser.add_argument("--events", type=int, help="valid events to publish (10,000)")
    parser.add_argument("--rate", type=float, default=200.0, help="events/s within a burst")
    parser.add_argument("--burst", type=int, default=200, help="events per burst")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="90 s and 2,000 events")
    parser.add_argument(
        "--faults", default=",".join(KINDS), help="comma-separated kinds to draw from (all)"
    )
    parser.add_argument("--malformed", type=int, help="malformed events to inject (20)")
    parser.add_argument("--p99-bound", type=float, default=2.0, help="seconds, final window")
    parser.add_argument("--heartbeat", type=int, default=3, help="AMQP heartbeat, seconds")
    parser.add_argument("--drain-timeout", type=float, default=240.0)
    args = parser.parse_args(argv)
    duration = args.duration or (90.0 if args.quick else 600.0)
    events = args.events or (2_000 if args.quick else 10_000)
    kinds = [kind.strip() for kind in args.faults.split(",") if kind.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        parser.error(f"unknown fault kinds {unknown}; known: {', '.join(KINDS)}")
    bursts = math.ceil(events / args.burst)
    config = Config(
        events=events,
        malformed=args.malformed if args.malformed is not None else (5 if args.quick else 20),
        rate=args.rate,
        burst=args.burst,
        bursts=bursts,
        duration=duration,
        # The last minute (a third of a short run), and at least the whole last burst.
        final_window=max(min(60.0, duration / 3), duration - (bursts - 1) * duration / bursts),
        p99_bound=args.p99_bound,
        seed=args.seed,
    )
    if (bursts - 1) * duration / bursts + args.burst / args.rate > duration:
        parser.error("a burst does not fit: raise --rate or --duration")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    run_dir = ROOT / "build" / "soak" / f"{stamp}-seed{args.seed}-{uuid.uuid4().hex[:4]}"
    return Plan(config, kinds, args.heartbeat, args.drain_timeout, run_dir)


def main() -> None:
    plan = parse()
    # The soak's own publisher and mail server report every fault they meet; the report says
    # what matters (Herald's own logs are in the run directory).
    for name in ("aiormq", "aio_pika", "mail.log"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    async def run() -> int:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await soak(plan)

    try:
        code = asyncio.run(run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("soak interrupted: everything it started was stopped", file=sys.stderr)
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
