"""The faults bench/soak.py injects, rows 1-6, 11-12 and 16-21 of FAULTS.md, one at a time:
each is injected, held, lifted, and then the soak waits until every replica answers /readyz
200 again (`recovered`) before the next one. Whole-broker faults hit the soak's private node,
network faults the replicas' own proxies, never the shared broker on 5672."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from soak_mail import TRANSIENT_REPLIES
from soak_rig import Replica, Rig

from tests.faults.harness import poll
from tests.faults.proxy import TcpProxy

CONSUMED_WITHIN = 60.0  # seconds a fault that waits for traffic (4xx replies, drops) may take


@dataclass
class Fault:
    kind: str
    row: str
    started: float  # time.time()
    target: str = ""
    detail: str = ""
    lifted: float = 0.0
    recovered: float | None = None  # every replica ready again; None: not within the bound
    error: str | None = None  # the soak could not inject it (its own failure, not Herald's)

    @property
    def recovery_seconds(self) -> float | None:
        """From injection until every replica was ready again: the fault's time to recover."""
        return None if self.recovered is None else self.recovered - self.started


Injector = Callable[[Rig, random.Random, Fault], Awaitable[None]]


# Broker (rows 1-4, on the private node) ------------------------------------------------------


async def broker_restart(rig: Rig, rng: random.Random, fault: Fault) -> None:
    hold = rng.uniform(2, 6)
    await rig.broker.ctl("stop_app")
    await asyncio.sleep(hold)
    await rig.broker.ctl("start_app")
    fault.target, fault.detail = "broker", f"stop_app, {hold:.1f} s, start_app"


async def broker_kill(rig: Rig, rng: random.Random, fault: Fault) -> None:
    hold = rng.uniform(1, 3)
    await rig.broker.kill()
    await asyncio.sleep(hold)
    await rig.broker.start()
    fault.target = "broker"
    fault.detail = f"SIGKILL beam.smp, {hold:.1f} s down, boot {rig.broker.started_in:.1f} s"


async def broker_freeze(rig: Rig, rng: random.Random, fault: Fault) -> None:
    hold = 4 * rig.heartbeat + rng.uniform(1, rig.heartbeat)
    rig.broker.signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(hold)
    finally:
        rig.broker.signal(signal.SIGCONT)
    fault.target = "broker"
    fault.detail = f"SIGSTOP {hold:.1f} s (heartbeat {rig.heartbeat} s), SIGCONT"


async def connections_closed(rig: Rig, _rng: random.Random, fault: Fault) -> None:
    listed = await rig.broker.ctl("list_connections", "pid", "--no-table-headers")
    await rig.broker.ctl("close_all_connections", "soak fault")
    fault.target = "broker"
    fault.detail = f"close_all_connections ({len(listed.split())} open, publisher's included)"


# Network between Herald and the broker (rows 5-6, the replicas' proxies) ----------------------


def _links(rig: Rig, rng: random.Random) -> tuple[str, list[TcpProxy]]:
    choice = rng.choice([*range(len(rig.proxies)), -1])
    if choice < 0:
        return "both links", rig.proxies
    return f"replica {choice} link", [rig.proxies[choice]]


async def network_blackhole(rig: Rig, rng: random.Random, fault: Fault) -> None:
    fault.target, proxies = _links(rig, rng)
    hold = 4 * rig.heartbeat + rng.uniform(1, rig.heartbeat)
    for proxy in proxies:
        proxy.blackhole()
    try:
        await asyncio.sleep(hold)
    finally:
        for proxy in proxies:
            proxy.resume()
    fault.detail = f"blackhole {hold:.1f} s (heartbeat {rig.heartbeat} s)"


async def network_reset(rig: Rig, rng: random.Random, fault: Fault) -> None:
    fault.target, proxies = _links(rig, rng)
    times = rng.randint(1, 3)
    reset = 0
    for round_ in range(times):
        if round_:
            await rig.wait_ready(30)  # the next RST hits the reconnected links
        reset += sum(proxy.reset_all() for proxy in proxies)
    fault.detail = f"TCP RST x{times} ({reset} connections)"


async def network_cut_frame(rig: Rig, rng: random.Random, fault: Fault) -> None:
    index = rng.randrange(len(rig.proxies))
    proxy = rig.proxies[index]
    proxy.cut_mid_frame()
    cut = await poll(lambda: not proxy.cut_pending, 5 * rig.heartbeat, interval=0.05)
    if not cut:
        proxy._cut_next = False  # no frame from the broker came: disarm (no public API)
    fault.target = f"replica {index} link"
    fault.detail = "a broker frame cut in half, then RST" if cut else "no frame came: not cut"


# Herald replicas (rows 11-12) ----------------------------------------------------------------


async def _restart(replica: Replica, stop: Callable[[], Awaitable[str]], fault: Fault) -> None:
    replica.busy = True
    try:
        how = await stop()
        await replica.start()
    finally:
        replica.busy = False
    fault.target, fault.detail = f"replica {replica.index}", f"{how}, restarted"


async def replica_sigterm(rig: Rig, rng: random.Random, fault: Fault) -> None:
    replica = rng.choice(rig.replicas)

    async def stop() -> str:
        begun = time.monotonic()
        code = await replica.terminate()
        return f"exit {code} after {time.monotonic() - begun:.1f} s"

    await _restart(replica, stop, fault)


async def replica_sigkill(rig: Rig, rng: random.Random, fault: Fault) -> None:
    replica = rng.choice(rig.replicas)

    async def stop() -> str:
        await replica.kill()
        return "SIGKILL"

    await _restart(replica, stop, fault)


# The mail server (rows 16-21) ----------------------------------------------------------------


async def smtp_down(rig: Rig, rng: random.Random, fault: Fault) -> None:
    hold = rng.uniform(8, 20)
    rig.mail.stop()
    try:
        await asyncio.sleep(hold)
    finally:
        rig.mail.start()
    fault.target, fault.detail = "mail server", f"down {hold:.1f} s (connections refused)"


async def _first_hit(fault: Fault, left: Callable[[], int]) -> bool:
    """Wait until a fault that waits for traffic meets its first message; from then on it is
    hurting, so that is when it `started`. False if no traffic came."""
    armed = left()
    hit = await poll(lambda: left() < armed, CONSUMED_WITHIN, interval=0.05)
    fault.started = time.time()
    return hit


async def smtp_4xx(rig: Rig, rng: random.Random, fault: Fault) -> None:
    mailboxes = rig.mail.mailboxes
    count = rng.randint(20, 80)
    for _ in range(count):
        rng.choice(mailboxes).replies.append(rng.choice(TRANSIENT_REPLIES))

    def left() -> int:
        return sum(len(mailbox.replies) for mailbox in mailboxes)

    if await _first_hit(fault, left):
        await poll(lambda: left() == 0, CONSUMED_WITHIN)
    unused = left()
    for mailbox in mailboxes:
        mailbox.replies.clear()
    fault.target = "mail server"
    fault.detail = f"{count - unused} DATA replies 421/450/451/452" + (
        f" ({unused} withdrawn unused)" if unused else ""
    )


async def smtp_5xx(rig: Rig, rng: random.Random, fault: Fault) -> None:
    log = rig.mail.log
    at_rcpt, at_data = rng.randint(1, 3), rng.randint(0, 2)
    before = len(log.refused)
    with log.lock:
        log.refuse_at_rcpt += at_rcpt
        log.refuse_at_data += at_data

    def left() -> int:
        return log.refuse_at_rcpt + log.refuse_at_data

    if await _first_hit(fault, left):
        await poll(lambda: left() == 0, CONSUMED_WITHIN)
    with log.lock:
        log.refuse_at_rcpt = log.refuse_at_data = 0
    fault.target = "mail server"
    fault.detail = (
        f"{len(log.refused) - before} recipients refused for good "
        f"({at_rcpt} asked at RCPT 550/553, {at_data} at DATA 552/554)"
    )


async def _until_hit(rig: Rig, fault: Fault, left: Callable[[], int]) -> bool:
    """For a fault that lives in the server's state: close idle sessions (so that Herald's
    next send opens a new connection) until it meets a first connection; True once it did."""
    armed = left()
    end = time.monotonic() + CONSUMED_WITHIN
    while left() == armed and time.monotonic() < end:
        await rig.mail.close_idle_sessions()
        await poll(lambda: left() != armed, 0.5, interval=0.05)
    fault.started = time.time()
    return left() != armed


async def smtp_535(rig: Rig, rng: random.Random, fault: Fault) -> None:
    log = rig.mail.log
    hold = rng.uniform(3, 8)
    refused_before = log.logins_refused
    log.auth_ok = False
    try:
        if await _until_hit(rig, fault, lambda: log.logins_refused):
            end = time.monotonic() + hold
            while time.monotonic() < end:  # pooled sessions must log in again too
                await rig.mail.close_idle_sessions()
                await asyncio.sleep(0.5)
    finally:
        log.auth_ok = True
    fault.target = "mail server"
    fault.detail = (
        f"logins refused (535) for {hold:.1f} s after the first: "
        f"{log.logins_refused - refused_before} refused"
    )


async def smtp_slow_greeting(rig: Rig, rng: random.Random, fault: Fault) -> None:
    hold = rng.uniform(5, 12)
    mailboxes = rig.mail.mailboxes
    delayed = 0

    def top_up() -> None:
        nonlocal delayed
        for mailbox in mailboxes:
            while len(mailbox.greeting_delays) < 2:
                mailbox.greeting_delays.append(rng.uniform(1.5, 6))
                delayed += 1

    top_up()
    try:
        if await _until_hit(rig, fault, lambda: sum(len(m.greeting_delays) for m in mailboxes)):
            end = time.monotonic() + hold
            while time.monotonic() < end:  # every new connection waits; pooled ones are closed
                top_up()
                await rig.mail.close_idle_sessions()
                await asyncio.sleep(1)
    finally:
        for mailbox in mailboxes:
            delayed -= len(mailbox.greeting_delays)
            mailbox.greeting_delays.clear()
    fault.target = "mail server"
    fault.detail = f"{hold:.1f} s of greetings delayed 1.5-6 s (Herald's timeout 3 s): {delayed}"


async def smtp_drop_after_data(rig: Rig, rng: random.Random, fault: Fault) -> None:
    mailbox = rng.choice(rig.mail.mailboxes)
    count = rng.randint(1, 3)
    mailbox.drop_after_data += count
    if await _first_hit(fault, lambda: mailbox.drop_after_data):
        await poll(lambda: mailbox.drop_after_data == 0, CONSUMED_WITHIN)
    unused, mailbox.drop_after_data = mailbox.drop_after_data, 0
    fault.target = f"replica {mailbox.replica}'s mail server"
    fault.detail = f"{count - unused} messages taken, then the connection dropped before the 250"


KINDS: dict[str, tuple[str, Injector]] = {
    "broker_restart": ("1", broker_restart),
    "broker_kill": ("2", broker_kill),
    "broker_freeze": ("3", broker_freeze),
    "connections_closed": ("4", connections_closed),
    "network_blackhole": ("5", network_blackhole),
    "network_reset": ("6", network_reset),
    "network_cut_frame": ("6", network_cut_frame),
    "replica_sigterm": ("11", replica_sigterm),
    "replica_sigkill": ("12", replica_sigkill),
    "smtp_down": ("16", smtp_down),
    "smtp_4xx": ("17", smtp_4xx),
    "smtp_5xx": ("18", smtp_5xx),
    "smtp_535": ("19", smtp_535),
    "smtp_slow_greeting": ("20", smtp_slow_greeting),
    "smtp_drop_after_data": ("21", smtp_drop_after_data),
}
# Faults after which a redelivered event may wait for a dead process's claim to lapse (the
# ledger's 15 s lease, workflow/pipeline.py) before it is sent.
LEASE_FAULTS = frozenset({"replica_sigkill", "replica_sigterm"})
# Faults that open the documented duplicate window (README "Delivery guarantees").
DUPLICATE_WINDOW_FAULTS = frozenset({"replica_sigkill", "smtp_drop_after_data"})


async def inject(rig: Rig, rng: random.Random, kind: str, recover_within: float) -> Fault:
    row, injector = KINDS[kind]
    fault = Fault(kind, row, time.time())
    try:
        await injector(rig, rng, fault)
    except Exception as exc:  # a broken injection must not end the soak without its report
        fault.error = f"{type(exc).__name__}: {exc}"
        fault.detail = f"injection failed: {fault.error}"
    finally:
        fault.lifted = time.time()
    if await rig.wait_ready(recover_within) is not None:
        fault.recovered = time.time()
    return fault
