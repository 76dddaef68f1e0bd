"""What bench/soak.py runs and watches: Herald replicas as numbered process lifetimes (with
their RSS samples and how each ended), the rig that ties the private broker node, the proxies,
the mail service and the replicas together, and the paced publisher that remembers when it
first tried to publish each event."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractRobustConnection
from soak_mail import MailService

from herald.consumers.topology import EVENTS_EXCHANGE
from tests.faults.broker_node import BrokerNode
from tests.faults.harness import HeraldProcess
from tests.faults.proxy import TcpProxy


@dataclass
class Lifetime:
    """One `herald run` process of a replica, from spawn to exit."""

    replica: int
    generation: int
    pid: int
    started: float  # time.time()
    ended: float | None = None
    how: str = ""  # sigkill, sigterm, end of soak, exited by itself
    exit_code: int | None = None
    rss_kib: list[tuple[float, int]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"replica {self.replica}.{self.generation}"


class Replica:
    """A replica slot: one process at a time, restarted the way a supervisor would."""

    def __init__(self, index: int, env: dict[str, str], workdir: Path, http_port: int) -> None:
        self.index = index
        self.herald = HeraldProcess(env, workdir, http_port)
        self.lifetimes: list[Lifetime] = []
        self.busy = False  # the soak is stopping or starting it on purpose

    @property
    def current(self) -> Lifetime | None:
        if self.lifetimes and self.lifetimes[-1].ended is None:
            return self.lifetimes[-1]
        return None

    @property
    def log_path(self) -> Path:
        return self.herald.cwd / f"herald-{self.herald.http_port}.log"

    async def start(self) -> None:
        await self.herald.start()
        assert self.herald.process is not None
        self.lifetimes.append(
            Lifetime(self.index, len(self.lifetimes), self.herald.process.pid, time.time())
        )

    def _ended(self, how: str, code: int | None) -> None:
        current = self.current
        if current is not None:
            current.ended, current.how, current.exit_code = time.time(), how, code

    async def kill(self) -> None:
        await self.herald.kill()
        self._ended("sigkill", self.herald.process.returncode if self.herald.process else None)

    async def terminate(self, how: str = "sigterm") -> int | None:
        """SIGTERM and wait (40 s, then SIGKILL); the exit code, None if it had to be killed."""
        process = self.herald.process
        if process is None or process.returncode is not None:
            self._ended("exited by itself", process.returncode if process else None)
            return process.returncode if process else None
        try:
            code: int | None = await self.herald.terminate(timeout=40)
        except TimeoutError:
            await self.herald.kill()
            code = None
        self._ended(how, code)
        return code

    def check_exit(self) -> Lifetime | None:
        """The lifetime that ended without the soak asking (a crash), if any."""
        process = self.herald.process
        current = self.current
        if self.busy or current is None or process is None or process.returncode is None:
            return None
        self._ended("exited by itself", process.returncode)
        return current

    def sample_rss(self) -> None:
        current = self.current
        if current is None:
            return
        try:
            status = Path(f"/proc/{current.pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                current.rss_kib.append((time.time(), int(line.split()[1])))
                return

    async def ready(self) -> bool:
        return self.current is not None and await self.herald.readyz() == 200


@dataclass
class Rig:
    broker: BrokerNode
    proxies: list[TcpProxy]  # one per replica, between it and the broker
    mail: MailService
    replicas: list[Replica]
    heartbeat: int

    async def all_ready(self) -> bool:
        return all([await replica.ready() for replica in self.replicas])

    async def wait_ready(self, within: float) -> float | None:
        """Seconds until every replica answers /readyz 200; None if not `within` seconds."""
        begun = time.monotonic()
        while not await self.all_ready():
            if time.monotonic() - begun > within:
                return None
            await asyncio.sleep(0.2)
        return time.monotonic() - begun


@dataclass(frozen=True, slots=True)
class Outgoing:
    message_id: str
    body: bytes
    routing_key: str
    offset: float  # seconds after the start of publishing


@dataclass
class Publisher:
    """Publishes like an upstream service (persistent, confirmed, the same message again when
    a confirm is lost or the broker is away), straight to the broker, never through a proxy."""

    url: str
    first_attempt: dict[str, float] = field(default_factory=dict)  # message id -> time.time()
    confirmed: dict[str, float] = field(default_factory=dict)
    given_up: list[str] = field(default_factory=list)
    republished: int = 0
    give_up_after: float = 300.0
    _connection: AbstractRobustConnection | None = None
    _exchange: AbstractExchange | None = None

    async def open(self) -> None:
        self._connection = await aio_pika.connect_robust(self.url)
        channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def run(self, schedule: list[Outgoing], in_flight: int = 400) -> None:
        """Publish each message at its offset (paced; confirms awaited concurrently)."""
        loop = asyncio.get_running_loop()
        begun = loop.time()
        slots = asyncio.Semaphore(in_flight)
        tasks: set[asyncio.Task[None]] = set()
        for outgoing in schedule:
            delay = begun + outgoing.offset - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing: the schedule is the load
            await slots.acquire()
            task = asyncio.create_task(self._publish(outgoing))
            tasks.add(task)
            task.add_done_callback(lambda done: (tasks.discard(done), slots.release()))
        await asyncio.gather(*tasks)

    async def _publish(self, outgoing: Outgoing) -> None:
        assert self._exchange is not None
        self.first_attempt[outgoing.message_id] = time.time()
        deadline = time.monotonic() + self.give_up_after
        message = aio_pika.Message(
            outgoing.body,
            content_type="application/cloudevents+json",
            message_id=outgoing.message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        while True:
            try:
                await self._exchange.publish(message, routing_key=outgoing.routing_key, timeout=5)
            except Exception:  # broker away, channel closed, confirm lost: publish it again
                if time.monotonic() > deadline:
                    self.given_up.append(outgoing.message_id)
                    return
                self.republished += 1
                await asyncio.sleep(0.5)
                continue
            self.confirmed[outgoing.message_id] = time.time()
            return


def event_body(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()
