"""Every figure of the performance issue, side by side in one run, then one table.

    .venv/bin/python bench/run.py [--events N] [--latency-rate R] [--latency-seconds S]
                                  [--profile] [--postgres URL] [--baseline REV [--rounds N]]

1. the broker's ceiling: an ack-only aio-pika consumer draining N events from a quorum queue;
2. the straightforward pipeline with aio-pika, and 3. the same with FastStream
   (`bench/straightforward.py`: validate, render, EmailMessage, one aiosmtplib connection,
   ack after send; no ledger);
3b. two floors, which bound what Herald's own parts reach here without its guarantees: its
   renderer and SMTP pool with no ledger, and validate + plan + render with no SMTP at all;
4. `herald run` draining the same N events with every guarantee on (SQLite ledger);
5. with `--postgres`: 1 and 2 `herald run` processes on one PostgreSQL ledger;
6. latency at a steady rate: events published at R per second for S seconds, each stamped with
   its publish time as the event `time`; Herald's `herald_event_to_accept_seconds` then is
   publish-to-SMTP-acceptance, and its 0.05 s bucket says whether p99 is under 50 ms;
7. Herald's peak RSS (VmHWM) and CPU per delivered email (utime + stime / emails), and with
   `--profile` the CPU split per stage from a py-spy sample of the drain;
7b. with `--baseline REV`: the same drain through REV's `herald run` (its tree and virtualenv
   built once under the temp directory) and the working tree's, alternating `--rounds` times;
   the medians of CPU per email and their ratio, the comparison the machine's drift allows;
8. with `--backlog N`: Herald's RSS, sampled every second, while it drains a backlog of N events
   for `--backlog-seconds` (1,000,000 for the issue's memory target).

The SMTP server is postfix's `smtp-sink` (installed if missing). Each run uses its own vhost.
The last line is the headline ratio. Figures vary by machine: compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import drain  # noqa: E402

from herald.consumers.topology import EVENTS_EXCHANGE  # noqa: E402
from herald.schemas.examples import load_example  # noqa: E402

PYTHON = str(ROOT / ".venv/bin/python")
HERALD = str(ROOT / ".venv/bin/herald")
# Which functions' samples count towards which stage (py-spy, inclusive, first match wins).
STAGES = (
    ("render", ("EmailRenderer.render",)),
    ("send (SMTP)", ("SmtpSender.send",)),
    ("ledger", ("GroupCommit._runner", "_connection_worker_thread", "SqlLedger.")),
    ("validate", ("decode (schemas/decode.py",)),
    ("map", ("plan_event", "ReminderScheduler.apply", "ThresholdAlerts.deliveries")),
    ("broker (aio-pika)", ("aiormq", "aio_pika")),
    ("metrics and logs", ("prometheus_client", "logging/")),
)


def ensure_bench_dependencies() -> None:
    try:
        import faststream  # noqa: F401
    except ImportError:
        print("installing the bench extra (faststream, py-spy) ...", flush=True)
        subprocess.run(
            [PYTHON, "-m", "pip", "install", "-q", "-e", f"{ROOT}[dev,bench]"], check=True
        )


def straightforward(variant: str, url: str, bodies: list[bytes]) -> dict[str, float]:
    """Run one variant of bench/straightforward.py; its printed `name value` lines."""
    queue = f"bench.{variant}"

    async def preload() -> None:
        import aio_pika

        connection = await aio_pika.connect_robust(url)
        async with connection:
            channel = await connection.channel()
            declared = await channel.declare_queue(
                queue, durable=True, arguments={"x-queue-type": "quorum"}
            )
            await declared.purge()
        await drain.publish(url, bodies, queue, "")

    asyncio.run(preload())
    result = subprocess.run(
        [
            PYTHON,
            str(ROOT / "bench/straightforward.py"),
            "--variant",
            variant,
            "--url",
            url,
            "--queue",
            queue,
            "--count",
            str(len(bodies)),
            "--smtp-port",
            str(drain.SMTP_SINK_PORT),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    return {
        name: float(value)
        for name, value in (line.split() for line in result.stdout.splitlines() if line.strip())
    }


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds used, peak RSS bytes) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return cpu, _memory(pid, "VmHWM")


def _memory(pid: int, field: str) -> int:
    """A memory figure of /proc/<pid>/status (VmHWM: peak RSS, VmRSS: current), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


def build_baseline(revision: str) -> str:
    """The `herald` executable of another git revision: its tree (`git archive`) and its own
    virtualenv under the temp directory, built once per commit and reused by later runs."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{revision}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    base = Path(tempfile.gettempdir()) / f"herald-baseline-{commit[:12]}"
    herald = base / ".venv/bin/herald"
    if herald.exists():
        return str(herald)
    print(f"building the baseline {commit[:12]} in {base} ...", flush=True)
    source = base / "src"
    source.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", commit], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(source)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {commit} failed")
    subprocess.run([sys.executable, "-m", "venv", str(base / ".venv")], check=True)
    subprocess.run(
        [str(base / ".venv/bin/python"), "-m", "pip", "install", "-q", "-e", str(source)],
        check=True,
    )
    return str(herald)


def start_herald(
    url: str, workdir: Path, database_url: str, port: int, herald: str = HERALD
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HERALD_AMQP_URL": url,
        "HERALD_SMTP_HOST": "127.0.0.1",
        "HERALD_SMTP_PORT": str(drain.SMTP_SINK_PORT),
        "HERALD_DATABASE_URL": database_url,
        "HERALD_HTTP_PORT": str(port),
        "HERALD_LOG_LEVEL": "WARNING",
        "HERALD_PREFETCH": os.environ.get("HERALD_PREFETCH", "256"),
        "HERALD_SMTP_POOL_SIZE": os.environ.get("HERALD_SMTP_POOL_SIZE", "8"),
    }
    process = subprocess.Popen([herald, "run"], env=env, cwd=workdir)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("herald exited during start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                return process
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("herald did not become ready")


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def total(values: dict[str, float], prefix: str, **labels: str) -> float:
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(
        value
        for name, value in values.items()
        if name.startswith(prefix + "{") and all(item in name for item in wanted)
    )


def herald_drain(
    url: str,
    bodies: list[bytes],
    database_url: str | None,
    replicas: int = 1,
    profile: Path | None = None,
    herald: str = HERALD,
) -> dict[str, float]:
    """Preload, then time `replicas` herald processes draining the backlog."""
    asyncio.run(drain.preload(url, bodies))
    with tempfile.TemporaryDirectory() as workdir:
        database = database_url or f"sqlite:///{workdir}/bench.db"
        ports = [drain.HTTP_PORT + index for index in range(replicas)]
        processes = [start_herald(url, Path(workdir), database, port, herald) for port in ports]
        sampler = None
        try:
            if profile is not None:
                sampler = subprocess.Popen(
                    [
                        str(Path(PYTHON).parent / "py-spy"),  # the venv's, not on PATH
                        "record",
                        "--nonblocking",  # sampling must not slow the drain it measures
                        "--pid",
                        str(processes[0].pid),
                        "--duration",
                        "10",
                        "--rate",
                        "200",
                        "-f",
                        "flamegraph" if profile.suffix == ".svg" else "raw",
                        "-o",
                        str(profile),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            cpu_at_start = sum(proc_stats(process.pid)[0] for process in processes)
            started = time.perf_counter()
            processed = 0.0
            while processed < len(bodies):
                time.sleep(0.2)
                processed = sum(
                    total(scrape(port), "herald_events_processed_total", domain="orders")
                    for port in ports
                )
            elapsed = time.perf_counter() - started
            emails = sum(
                total(scrape(port), "herald_notifications_total", outcome="sent") for port in ports
            )
            cpu, peak = -cpu_at_start, 0  # the drain's CPU, not the start-up's imports
            for process in processes:
                used, rss = proc_stats(process.pid)
                cpu, peak = cpu + used, max(peak, rss)
            if sampler is not None:
                sampler.wait(timeout=60)
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(timeout=60)
    return {
        "events_per_second": len(bodies) / elapsed,
        "emails_per_second": emails / elapsed,
        "cpu_us_per_email": cpu / emails * 1e6 if emails else 0.0,
        "peak_rss_mb": peak / 1e6,
    }


def compare_with_baseline(
    url: str, bodies: list[bytes], baseline: str, rounds: int
) -> list[tuple[str, str]]:
    """Drain the same events through the baseline's `herald run` and the working tree's,
    alternating, `rounds` times each; the medians of CPU per email and of the drain rate, and
    their ratios. Interleaving spreads the machine's drift over both."""
    herald_of_baseline = build_baseline(baseline)
    figures: dict[str, list[dict[str, float]]] = {"baseline": [], "working tree": []}
    for round_number in range(rounds):
        order = ["baseline", "working tree"]
        if round_number % 2:
            order.reverse()  # neither always drains first, on a colder machine
        for name in order:
            executable = herald_of_baseline if name == "baseline" else HERALD
            figures[name].append(herald_drain(url, bodies, None, herald=executable))

    def median(name: str, key: str) -> float:
        values = sorted(run[key] for run in figures[name])
        return values[len(values) // 2]

    rows: list[tuple[str, str]] = []
    for name in figures:
        cpu = [f"{run['cpu_us_per_email']:,.0f}" for run in figures[name]]
        label = f"baseline {baseline}" if name == "baseline" else "working tree"
        rows.append(
            (
                f"{label}: CPU per email, emails/s (median of {rounds})",
                f"{median(name, 'cpu_us_per_email'):,.0f} us ({', '.join(cpu)}), "
                f"{median(name, 'emails_per_second'):,.0f} emails/s",
            )
        )
    cpu_ratio = median("working tree", "cpu_us_per_email") / median("baseline", "cpu_us_per_email")
    rate_ratio = median("working tree", "emails_per_second") / median(
        "baseline", "emails_per_second"
    )
    rows.append(("working tree / baseline CPU per email", f"{cpu_ratio:.2f} (target <= 0.50)"))
    rows.append(("working tree / baseline emails per second", f"{rate_ratio:.2f}x"))
    return rows


def backlog_memory(url: str, count: int, seconds: float) -> dict[str, float]:
    """Publish a backlog of `count` events (in chunks, so the publisher stays small), then let
    one Herald drain it for `seconds`, sampling its RSS every second. In-flight work is bounded
    by the prefetch, so RSS must stay flat however deep the queue is; the drain need not end."""
    chunk = 50_000
    for start in range(0, count, chunk):
        asyncio.run(drain.preload(url, drain.events(min(chunk, count - start))))
    samples: list[int] = []
    with tempfile.TemporaryDirectory() as workdir:
        process = start_herald(url, Path(workdir), f"sqlite:///{workdir}/rss.db", drain.HTTP_PORT)
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                time.sleep(1)
                samples.append(_memory(process.pid, "VmRSS"))
            processed = total(scrape(drain.HTTP_PORT), "herald_events_processed_total")
            peak = proc_stats(process.pid)[1]
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    early = samples[min(9, len(samples) - 1)]
    return {
        "backlog": count,
        "processed": processed,
        "peak_rss_mb": peak / 1e6,
        "rss_at_10s_mb": early / 1e6,
        "rss_at_end_mb": samples[-1] / 1e6,
    }


def latency(url: str, rate: float, seconds: float) -> dict[str, float]:
    """Publish at `rate` for `seconds` into a running Herald; quantiles of publish to SMTP
    acceptance from Herald's own histogram."""
    import aio_pika

    count = int(rate * seconds)
    template = load_example("orders.order.placed")

    async def publish_steadily() -> None:
        connection = await aio_pika.connect_robust(url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(EVENTS_EXCHANGE)
            loop = asyncio.get_running_loop()
            started = loop.time()
            pending = []
            for index in range(count):
                due = started + index / rate
                if (delay := due - loop.time()) > 0:
                    await asyncio.sleep(delay)
                template["id"] = f"lat-{index}-{uuid.uuid4().hex[:8]}"
                template["time"] = datetime.now(UTC).isoformat(timespec="microseconds")
                body = json.dumps(template).encode()
                pending.append(
                    asyncio.ensure_future(
                        exchange.publish(
                            aio_pika.Message(
                                body=body,
                                content_type="application/cloudevents+json",
                                message_id=template["id"],
                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            ),
                            routing_key="orders.order.placed",
                            timeout=30,
                        )
                    )
                )
            await asyncio.gather(*pending)

    with tempfile.TemporaryDirectory() as workdir:
        port = drain.HTTP_PORT + 10
        process = start_herald(url, Path(workdir), f"sqlite:///{workdir}/lat.db", port)
        try:
            asyncio.run(publish_steadily())
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                values = scrape(port)
                if total(values, "herald_events_processed_total", domain="orders") >= count:
                    break
                time.sleep(0.2)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    buckets: Counter[float] = Counter()
    for name, value in values.items():
        if name.startswith("herald_event_to_accept_seconds_bucket{"):
            bound = re.search(r'le="([^"]+)"', name)
            assert bound is not None
            buckets[float(bound.group(1))] += value
    bounds = sorted(buckets)
    observed = buckets[float("inf")]

    def quantile(q: float) -> float:
        rank = q * observed
        previous_bound, previous_count = 0.0, 0.0
        for bound in bounds:
            if buckets[bound] >= rank:
                if bound == float("inf"):
                    return previous_bound
                span = buckets[bound] - previous_count
                fraction = 0.0 if span == 0 else (rank - previous_count) / span
                return previous_bound + (bound - previous_bound) * fraction
            previous_bound, previous_count = bound, buckets[bound]
        return previous_bound

    return {
        "rate": rate,
        "emails": observed,
        "p50_ms": quantile(0.5) * 1000,
        "p99_ms": quantile(0.99) * 1000,
        "within_50ms": buckets[0.05] / observed if observed else 0.0,
    }


def stage_split(profile: Path) -> list[tuple[str, float]]:
    samples = 0
    per_stage: Counter[str] = Counter()
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples += int(count)
        for stage, markers in STAGES:
            if any(marker in stack for marker in markers):
                per_stage[stage] += int(count)
                break
        else:
            per_stage["other (event loop, consumer glue)"] += int(count)
    return [
        (stage, per_stage[stage] / samples)
        for stage, _ in [*STAGES, ("other (event loop, consumer glue)", ())]
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument(
        "--latency-rate", type=float, action="append", help="events/s; repeatable (100, 500)"
    )
    parser.add_argument("--latency-seconds", type=float, default=10)
    parser.add_argument("--profile", action="store_true", help="py-spy the Herald drain")
    parser.add_argument("--postgres", help="also run 1 and 2 replicas on this PostgreSQL URL")
    parser.add_argument(
        "--backlog", type=int, default=0, help="also measure RSS over a backlog this deep"
    )
    parser.add_argument("--backlog-seconds", type=float, default=120)
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also drain through this git revision (built in a scratch virtualenv), interleaved",
    )
    parser.add_argument("--rounds", type=int, default=3, help="drains per side with --baseline")
    args = parser.parse_args()
    ensure_bench_dependencies()
    sink = drain.ensure_smtp_sink()
    vhost = f"herald-bench-{uuid.uuid4().hex[:8]}"
    drain.rabbitmqctl("add_vhost", vhost)
    drain.rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    sink_process = subprocess.Popen(
        [sink, "-u", "postfix", f"127.0.0.1:{drain.SMTP_SINK_PORT}", "1024"],
        stdout=subprocess.DEVNULL,
    )
    rows: list[tuple[str, str]] = []
    profile = Path(tempfile.gettempdir()) / f"herald-profile-{vhost}.txt" if args.profile else None
    try:
        bodies = drain.events(args.events)
        ceiling = asyncio.run(drain.ceiling(url, bodies))
        naive = straightforward("aiopika", url, bodies)["rate"]
        fast = straightforward("faststream", url, bodies)["rate"]
        floor = straightforward("floor", url, bodies)
        floor_nosmtp = straightforward("floor-nosmtp", url, bodies)
        herald = herald_drain(url, bodies, None, profile=profile)
        rows += [
            ("ack-only aio-pika consumer (ceiling)", f"{ceiling:,.0f} events/s"),
            ("straightforward aio-pika pipeline", f"{naive:,.0f} events/s"),
            ("straightforward FastStream pipeline", f"{fast:,.0f} events/s"),
            (
                "herald run, SQLite ledger, all guarantees",
                f"{herald['events_per_second']:,.0f} events/s "
                f"({herald['emails_per_second']:,.0f} emails/s)",
            ),
            ("herald / ceiling", f"{herald['events_per_second'] / ceiling:.1%} (target 8%)"),
            (
                "herald / straightforward aio-pika",
                f"{herald['events_per_second'] / naive:.1f}x (target 5x)",
            ),
            (
                "herald / straightforward FastStream",
                f"{herald['events_per_second'] / fast:.1f}x (target 5x)",
            ),
            ("herald CPU per delivered email", f"{herald['cpu_us_per_email']:,.0f} us"),
            (
                "floor: herald's render + SMTP pool, no ledger",
                f"{floor['rate']:,.0f} events/s, {floor['rate'] / ceiling:.1%} of the ceiling, "
                f"{floor['cpu_us_per_email']:,.0f} us CPU per email",
            ),
            (
                "floor: validate + plan + render, no SMTP",
                f"{floor_nosmtp['rate']:,.0f} events/s, {floor_nosmtp['rate'] / ceiling:.1%} of "
                f"the ceiling, {floor_nosmtp['cpu_us_per_email']:,.0f} us CPU per email",
            ),
            (
                f"herald peak RSS draining {args.events:,} events",
                f"{herald['peak_rss_mb']:.0f} MB (target < 150 MB at 1,000,000)",
            ),
        ]
        if args.baseline:
            rows += compare_with_baseline(url, bodies, args.baseline, args.rounds)
        if args.postgres:  # fresh event ids: the PostgreSQL ledger outlives each run
            one = herald_drain(url, drain.events(args.events), args.postgres, replicas=1)
            two = herald_drain(url, drain.events(args.events), args.postgres, replicas=2)
            rows += [
                ("herald run x1, PostgreSQL ledger", f"{one['events_per_second']:,.0f} events/s"),
                ("herald run x2, PostgreSQL ledger", f"{two['events_per_second']:,.0f} events/s"),
            ]
        for rate in args.latency_rate or [100.0, 500.0]:
            steady = latency(url, rate, args.latency_seconds)
            rows.append(
                (
                    f"latency at {steady['rate']:.0f} events/s, publish to SMTP 250",
                    f"p50 {steady['p50_ms']:,.0f} ms, p99 {steady['p99_ms']:,.0f} ms, "
                    f"{steady['within_50ms']:.1%} within 50 ms (target p99 < 50 ms)",
                )
            )
        if args.backlog:
            memory = backlog_memory(url, args.backlog, args.backlog_seconds)
            rows.append(
                (
                    f"herald RSS over a {args.backlog:,}-event backlog "
                    f"({args.backlog_seconds:.0f} s, {memory['processed']:,.0f} drained)",
                    f"peak {memory['peak_rss_mb']:.0f} MB; {memory['rss_at_10s_mb']:.0f} MB "
                    f"at 10 s, {memory['rss_at_end_mb']:.0f} MB at the end (target < 150 MB)",
                )
            )
        if profile is not None and profile.exists():
            rows += [
                (f"CPU share: {stage}", f"{share:.1%}") for stage, share in stage_split(profile)
            ]
    finally:
        sink_process.terminate()
        drain.rabbitmqctl("delete_vhost", vhost)
    width = max(len(name) for name, _ in rows)
    print(f"\n{'measure'.ljust(width)}  result")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    print(
        f"headline: herald drains at {herald['events_per_second'] / ceiling:.1%} of the broker's "
        f"ceiling and {herald['events_per_second'] / naive:.1f}x the straightforward pipeline"
    )


if __name__ == "__main__":
    main()
