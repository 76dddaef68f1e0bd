"""The soak's accounting and verdict (bench/soak.py): what the mail server received against
what was published, the ledger's failed rows against the server's permanent refusals, where
every duplicate came from, latency per minute against what that minute's faults allow, RSS per
process lifetime, and the queues at the end. Pure functions of what the soak observed."""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from soak_faults import LEASE_FAULTS, Fault
from soak_mail import Copy
from soak_rig import Lifetime

# A copy accepted by a replica this long before it was SIGKILLed (or up to 1 s after: its last
# bytes were still in flight) may be unrecorded in the ledger: the documented duplicate window.
KILL_WINDOW_SECONDS = 5.0
# Extra seconds a fault's after-effects may add to an event's latency once every replica is
# ready again: the longest broker-side retry delay (2 s), in-process SMTP backoff (under 2 s)
# and the backlog the fault built up; faults that end a process add the ledger's 15 s lease.
SLACK_SECONDS = 5.0
LEASE_SECONDS = 15.0
RSS_MIN_LIFETIME = 120.0  # seconds of samples before a lifetime's RSS is judged (at most 3/4
# of the run's duration, so that a short run is judged too)
RSS_RATIO = 1.3  # median of the last fifth <= this x the median of the second fifth


@dataclass
class Config:
    events: int
    malformed: int
    rate: float
    burst: int
    bursts: int
    duration: float
    final_window: float
    p99_bound: float
    seed: int


@dataclass
class Observed:
    t0: float  # time.time() when publishing began
    recipients: dict[str, str]  # event id -> recipient
    malformed_ids: set[str]
    first_attempt: dict[str, float]
    unconfirmed: list[str]
    republished: int
    copies: list[Copy]
    refused: dict[str, str]  # recipient -> the server's permanent reply
    ledger_failed: dict[str, str]  # recipient -> detail of its `failed` delivery row
    ledger_status: Counter[str]
    faults: list[Fault]
    lifetimes: list[Lifetime]
    queues: dict[str, tuple[int, int, int]]  # name -> (messages, ready, unacked)
    dead_letters: list[tuple[str, str]]  # (message id, x-reject-reason)
    drained_in: float | None  # seconds after the last publish until quiet; None: timed out
    total_seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass
class Minute:
    index: int
    events: int
    p50: float
    p99: float
    allowance: float
    faults: list[str]


@dataclass
class Result:
    lines: list[str]
    reasons: list[str]  # why it failed; empty: PASS


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def _in_kill_window(copy: Copy, lifetimes: Iterable[Lifetime]) -> Lifetime | None:
    for lifetime in lifetimes:
        if (
            lifetime.replica == copy.replica
            and lifetime.how == "sigkill"
            and lifetime.ended is not None
            and lifetime.ended - KILL_WINDOW_SECONDS <= copy.accepted_at <= lifetime.ended + 1
        ):
            return lifetime
    return None


def _allowance(
    config: Config, faults: list[Fault], begin: float, end: float
) -> tuple[float, list[str]]:
    """What latency the faults overlapping [begin, end] (plus the bound) can explain."""
    allowance, names = config.p99_bound, []
    for fault in faults:
        slack = SLACK_SECONDS + (LEASE_SECONDS if fault.kind in LEASE_FAULTS else 0.0)
        if fault.recovered is None:
            return math.inf, [*names, f"{fault.kind} (never recovered)"]
        if fault.started <= end + config.p99_bound and fault.recovered + slack >= begin:
            names.append(fault.kind)
            allowance = max(allowance, config.p99_bound + (fault.recovered - fault.started) + slack)
    return allowance, names


def analyse(config: Config, seen: Observed) -> Result:
    lines: list[str] = []
    reasons: list[str] = []
    out = lines.append

    # Emails -----------------------------------------------------------------------------------
    expected = set(seen.recipients.values())
    by_recipient: dict[str, list[Copy]] = defaultdict(list)
    for copy in seen.copies:
        by_recipient[copy.recipient].append(copy)
    refused = set(seen.refused)
    failed_rows = set(seen.ledger_failed)
    lost = sorted(r for r in expected - refused if r not in by_recipient)
    refused_unrecorded = sorted(refused - failed_rows)
    failed_unrefused = sorted(failed_rows - refused)
    unexpected = sorted(r for r in by_recipient if r not in expected or r in refused)

    duplicated = 0
    same_id = True
    windows: Counter[str] = Counter()
    outside: list[str] = []
    for recipient, copies in sorted(by_recipient.items()):
        if len(copies) < 2:
            continue
        duplicated += len(copies) - 1
        if len({copy.message_id for copy in copies}) > 1:
            same_id = False
            outside.append(f"{recipient}: {len(copies)} copies, different Message-IDs")
            continue
        # Each copy whose 250 Herald may never have recorded allows one more copy.
        ambiguous = 0
        for copy in copies[:-1]:
            if copy.dropped:
                ambiguous += 1
                windows["drop after DATA"] += 1
            elif (killed := _in_kill_window(copy, seen.lifetimes)) is not None:
                ambiguous += 1
                gap = killed.ended - copy.accepted_at if killed.ended else 0.0
                windows[f"SIGKILL after 250 ({killed.name}, {gap:.2f} s before)"] += 1
        if len(copies) > 1 + ambiguous:
            outside.append(
                f"{recipient}: {len(copies)} copies, {ambiguous} in a documented window; "
                f"accepted at "
                + ", ".join(
                    f"+{copy.accepted_at - seen.t0:.2f} s by replica {copy.replica}"
                    + (" (dropped)" if copy.dropped else "")
                    for copy in copies
                )
            )

    received = len(seen.copies)
    out("figures")
    out(
        f"  events published       {len(seen.recipients):,} valid + {len(seen.malformed_ids)} "
        f"malformed; {len(seen.unconfirmed)} never confirmed; {seen.republished:,} publish retries"
    )
    out(f"  emails                 {received:,} copies taken for {len(by_recipient):,} recipients")
    out(f"  lost                   {len(lost) + len(refused_unrecorded)}")
    out(
        f"  duplicated             {duplicated} (same Message-ID: {'yes' if same_id else 'no'}; "
        f"in the documented window: {duplicated - len(outside)})"
    )
    for window, count in sorted(windows.items()):
        out(f"    {count:>4} x {window}")
    out(f"  unexpected             {len(unexpected)}")
    codes = Counter(reply.split()[0] for reply in seen.refused.values())
    out(
        f"  failed_recorded        {len(failed_rows)} in the ledger; the server refused "
        f"{len(refused)} for good ("
        + ", ".join(f"{code} x{count}" for code, count in sorted(codes.items()))
        + ")"
    )
    out(
        "  ledger rows            "
        + ", ".join(f"{status} {count:,}" for status, count in sorted(seen.ledger_status.items()))
    )

    # Faults -----------------------------------------------------------------------------------
    kinds = Counter(f"{fault.kind} (row {fault.row})" for fault in seen.faults)
    out(f"  faults injected        {len(seen.faults)}")
    for kind, count in sorted(kinds.items()):
        out(f"    {count:>4} x {kind}")
    recoveries = [f.recovery_seconds for f in seen.faults if f.recovery_seconds is not None]
    if recoveries:
        out(
            f"  time to recover        median {_seconds(statistics.median(recoveries))}, "
            f"worst {_seconds(max(recoveries))} (injection until every replica ready)"
        )

    # Queues -----------------------------------------------------------------------------------
    out("  queues at the end      messages (ready/unacked)")
    for name, (messages, ready, unacked) in sorted(seen.queues.items()):
        out(f"    {name:<38} {messages} ({ready}/{unacked})")
    dead = Counter(message_id for message_id, _ in seen.dead_letters)
    reasons_dlq = Counter(reason for _, reason in seen.dead_letters)
    out(
        f"  dead letters           {len(seen.dead_letters)} ("
        + ", ".join(f"{reason} x{count}" for reason, count in sorted(reasons_dlq.items()))
        + f"); {len(dead)} of the {len(seen.malformed_ids)} malformed events injected"
        + (
            f", {len(seen.dead_letters) - len(dead)} extra copies (a copy confirmed, "
            "its ack lost to a broker fault: the copy is at-least-once)"
            if len(seen.dead_letters) > len(dead)
            else ""
        )
    )

    # RSS --------------------------------------------------------------------------------------
    out("  RSS per process lifetime (MiB): first / median 2nd fifth / median last fifth / last")
    rss_judged = 0
    rss_bad: list[str] = []
    rss_min = min(RSS_MIN_LIFETIME, 0.75 * config.duration)
    for lifetime in seen.lifetimes:
        samples = [kib / 1024 for _, kib in lifetime.rss_kib]
        if not samples:
            out(f"    {lifetime.name:<12} no samples ({lifetime.how})")
            continue
        span = lifetime.rss_kib[-1][0] - lifetime.rss_kib[0][0]
        n = len(samples)
        second = statistics.median(samples[n // 5 : max(n // 5 + 1, 2 * n // 5)])
        last = statistics.median(samples[4 * n // 5 :])
        judged = span >= rss_min
        verdict = f"not judged (< {rss_min:.0f} s)"
        if judged:
            rss_judged += 1
            ratio = last / second
            verdict = f"x{ratio:.2f} {'stable' if ratio <= RSS_RATIO else 'GROWING'}"
            if ratio > RSS_RATIO:
                rss_bad.append(f"{lifetime.name} RSS x{ratio:.2f} ({second:.0f} -> {last:.0f} MiB)")
        out(
            f"    {lifetime.name:<12} {samples[0]:6.1f} / {second:6.1f} / {last:6.1f} / "
            f"{samples[-1]:6.1f}  {span:5.0f} s, {n} samples, ended: {lifetime.how or 'running'}"
            f"{'' if lifetime.exit_code is None else f' (exit {lifetime.exit_code})'}; {verdict}"
        )

    # Latency ----------------------------------------------------------------------------------
    latencies: dict[int, list[float]] = defaultdict(list)
    final: list[float] = []
    final_begin = seen.t0 + config.duration - config.final_window
    for event_id, recipient in seen.recipients.items():
        copies = by_recipient.get(recipient)
        published = seen.first_attempt.get(event_id)
        if not copies or published is None:
            continue
        accepted = next((c.accepted_at for c in copies if not c.dropped), copies[0].accepted_at)
        latency = accepted - published
        latencies[int((published - seen.t0) // 60)].append(latency)
        if published >= final_begin:
            final.append(latency)
    minutes: list[Minute] = []
    for index in sorted(latencies):
        values = latencies[index]
        begin = seen.t0 + 60 * index
        allowance, names = _allowance(config, seen.faults, begin, begin + 60)
        minutes.append(
            Minute(
                index,
                len(values),
                _quantile(values, 0.5),
                _quantile(values, 0.99),
                allowance,
                names,
            )
        )
    out("  latency, publish -> SMTP acceptance, by minute of publishing")
    out("    minute  events     p50      p99  allowed p99  faults overlapping")
    for minute in minutes:
        flag = "" if minute.p99 <= minute.allowance else "  OVER"
        kinds_here = Counter(minute.faults)
        out(
            f"    {minute.index:>6}  {minute.events:>6}  {minute.p50:6.2f}s  {minute.p99:6.2f}s  "
            f"{minute.allowance:10.1f}s  "
            + (", ".join(f"{k} x{c}" if c > 1 else k for k, c in kinds_here.items()) or "-")
            + flag
        )
    final_faults = [
        f.kind
        for f in seen.faults
        if f.recovered is None or f.recovered + SLACK_SECONDS >= final_begin
    ]
    final_p99 = _quantile(final, 0.99) if final else math.nan
    out(
        f"  final {config.final_window:.0f} s (fault-free)   {len(final)} events, "
        f"p50 {_quantile(final, 0.5) if final else math.nan:.3f} s, p99 {final_p99:.3f} s "
        f"(bound {config.p99_bound:.1f} s)"
    )
    out(
        f"  total time             {seen.total_seconds:.0f} s (drained "
        + (
            f"{seen.drained_in:.0f} s after the last publish)"
            if seen.drained_in is not None
            else "NOT drained)"
        )
    )

    # Verdict ----------------------------------------------------------------------------------
    if seen.unconfirmed:
        reasons.append(f"the soak could not publish {len(seen.unconfirmed)} events")
    if lost:
        reasons.append(f"lost {len(lost)} emails (e.g. {', '.join(lost[:3])})")
    if refused_unrecorded:
        reasons.append(
            f"{len(refused_unrecorded)} recipients refused with 5xx have no failed row in the "
            f"ledger (e.g. {refused_unrecorded[0]})"
        )
    if failed_unrefused:
        reasons.append(
            f"{len(failed_unrefused)} deliveries recorded failed that the server never refused "
            f"for good (e.g. {failed_unrefused[0]}: {seen.ledger_failed[failed_unrefused[0]]})"
        )
    if unexpected:
        reasons.append(f"{len(unexpected)} unexpected recipients (e.g. {unexpected[0]})")
    if outside:
        reasons.append(
            f"{len(outside)} recipients duplicated outside the documented window: "
            + "; ".join(outside[:5])
        )
    busy = {name: q for name, q in seen.queues.items() if name != "herald.dead-letter" and q[0]}
    if busy:
        reasons.append(f"queues not empty at the end: {busy}")
    if set(dead) != seen.malformed_ids or any(r != "malformed_json" for r in reasons_dlq):
        reasons.append(
            f"dead-letter queue holds {sorted(set(dead) - seen.malformed_ids)[:5]} beyond the "
            f"{len(seen.malformed_ids)} injected malformed events, misses "
            f"{sorted(seen.malformed_ids - set(dead))[:5]}, reasons {dict(reasons_dlq)}"
        )
    if seen.drained_in is None:
        reasons.append("the backlog did not drain within the drain timeout")
    broken = [f"{f.kind}: {f.error}" for f in seen.faults if f.error is not None]
    if broken:
        reasons.append(f"the soak failed to inject {len(broken)} faults: {'; '.join(broken[:3])}")
    never = [
        f"{f.kind} at +{f.started - seen.t0:.0f} s" for f in seen.faults if f.recovered is None
    ]
    if never:
        reasons.append(f"replicas not ready again after: {', '.join(never)}")
    crashed = [lt.name for lt in seen.lifetimes if lt.how == "exited by itself"]
    if crashed:
        reasons.append(f"replicas exited by themselves: {', '.join(crashed)}")
    unclean = [
        f"{lt.name} exit {lt.exit_code}"
        for lt in seen.lifetimes
        if lt.how in ("sigterm", "end of soak") and lt.exit_code != 0
    ]
    if unclean:
        reasons.append(f"SIGTERM did not end in exit 0: {', '.join(unclean)}")
    reasons.extend(rss_bad)
    if rss_judged == 0:
        reasons.append(f"no process lived {rss_min:.0f} s: RSS stability could not be judged")
    over = [m for m in minutes if m.p99 > m.allowance]
    for minute in over:
        reasons.append(
            f"minute {minute.index}: p99 {minute.p99:.2f} s over the {minute.allowance:.1f} s "
            f"its faults explain ({', '.join(minute.faults) or 'none'})"
        )
    if not final:
        reasons.append("no events in the final fault-free window")
    elif final_faults:
        reasons.append(f"the final window was not fault-free: {', '.join(final_faults)}")
    elif final_p99 > config.p99_bound:
        reasons.append(
            f"final window p99 {final_p99:.2f} s over the bound {config.p99_bound:.1f} s"
        )
    return Result(lines, reasons)
