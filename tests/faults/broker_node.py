"""A private RabbitMQ node for one fault scenario, so faults that hit a whole broker (stop_app,
SIGKILL, SIGSTOP, a memory alarm, a short consumer timeout) never touch the shared broker on
5672 that other tests and engineers use.

Each node has its own name (`fault-<random>@localhost`), AMQP and distribution ports, config
file, mnesia and log directories and pid file, all in a temporary directory owned by the
`rabbitmq` user; it shares only the machine's epmd and Erlang cookie. It is started the way
Debian's wrapper starts the shared one (`/usr/lib/rabbitmq/bin/rabbitmq-server` as the
`rabbitmq` user) but in the foreground, so the test owns the process, and stopped with
`rabbitmqctl -n <node> stop`; whatever is left of it is killed by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def _rabbitmq_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("rabbitmq")
    return entry.pw_uid, entry.pw_gid


@dataclass
class BrokerNode:
    """One private node. `config` lines go into its rabbitmq.conf, `advanced` is an Erlang
    term list for advanced.config (e.g. `[{rabbit, [{channel_tick_interval, 1000}]}]`)."""

    port: int
    dist_port: int
    config: list[str] = field(default_factory=list)
    advanced: str | None = None
    name: str = field(default_factory=lambda: f"fault-{uuid.uuid4().hex[:8]}@localhost")
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rabbit-")))
    started_in: float = 0.0  # seconds from spawn until the node answered
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def url_for(self, vhost: str = "", query: str = "") -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{vhost}" + (f"?{query}" if query else "")

    # Life cycle ------------------------------------------------------------------------------

    def _write_files(self) -> None:
        uid, gid = _rabbitmq_ids()
        lines = [
            f"listeners.tcp.local = 127.0.0.1:{self.port}",
            "loopback_users = none",
            "log.console = false",
            "log.file.level = info",
            *self.config,
        ]
        (self.directory / "rabbitmq.conf").write_text("\n".join(lines) + "\n")
        if self.advanced is not None:
            (self.directory / "advanced.config").write_text(self.advanced.rstrip(". \n") + ".\n")
        (self.directory / "enabled_plugins").write_text("[].\n")
        os.chmod(self.directory, 0o755)  # noqa: S103 (the rabbitmq user must enter it)
        for path in [self.directory, *self.directory.iterdir()]:
            os.chown(path, uid, gid)

    def _environment(self) -> dict[str, str]:
        base = self.directory
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RABBITMQ_", "ERL_"))
        }
        env.update(
            {
                "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
                "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(base / "log"),
                "RABBITMQ_PID_FILE": str(base / "pid"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
                "ERL_EPMD_ADDRESS": "127.0.0.1",
            }
        )
        return env

    async def start(self, timeout: float = 120) -> None:
        """Spawn the node and wait until its AMQP port answers (first start writes the
        config; a restart after `kill()` reuses the same data directory)."""
        if not (self.directory / "rabbitmq.conf").exists():
            self._write_files()
        begun = time.monotonic()
        log = (self.directory / "console.log").open("ab")
        self._process = subprocess.Popen(  # noqa: ASYNC220 (stop() is synchronous)
            ["su", "rabbitmq", "-s", "/bin/sh", "-c", SERVER],
            env=self._environment(),
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        await self.wait_until_up(timeout)
        self.started_in = time.monotonic() - begun

    async def wait_until_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not await _port_open(self.port):
            if self._process is not None and self._process.poll() is not None:
                raise AssertionError(f"node {self.name} exited: {self._console_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"node {self.name} did not start: {self._console_tail()}")
            await asyncio.sleep(0.1)
        # The port answers once the listener is up; the diagnostics confirm the node is booted.
        while True:
            done = await asyncio.to_thread(
                subprocess.run,
                ["rabbitmq-diagnostics", "-q", "-n", self.name, "check_port_connectivity"],
                capture_output=True,
                timeout=60,
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"node {self.name} not healthy: {done.stderr.decode()}")
            await asyncio.sleep(0.5)

    def _console_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.directory / "console.log").read_text(errors="replace")[-2000:]
        return ""

    def log_text(self) -> str:
        """The node's own log files, read as root."""
        return "".join(
            path.read_text(errors="replace")
            for path in sorted((self.directory / "log").glob("*.log"))
        )

    def beam_pid(self) -> int:
        return int((self.directory / "pid").read_text().strip())

    def _leftover_pids(self) -> list[int]:
        """Processes of this node (its unique name is on their command lines)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if self.name.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
        return pids

    def stop(self) -> None:
        """Stop the node, kill whatever is left of it, delete its files."""
        with contextlib.suppress(OSError, ValueError):
            os.kill(self.beam_pid(), signal.SIGCONT)  # a frozen node cannot stop itself
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run(
                ["rabbitmqctl", "-q", "-n", self.name, "stop"], capture_output=True, timeout=60
            )
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=20)
            if self._process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=10)
        for pid in self._leftover_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.directory, ignore_errors=True)

    # Faults ----------------------------------------------------------------------------------

    def rabbitmqctl(self, *args: str) -> str:
        done = subprocess.run(
            ["rabbitmqctl", "-q", "-n", self.name, *args],
            check=True,
            capture_output=True,
            timeout=120,
        )
        return done.stdout.decode()

    async def ctl(self, *args: str) -> str:
        return await asyncio.to_thread(self.rabbitmqctl, *args)

    def signal(self, signum: signal.Signals) -> None:
        os.kill(self.beam_pid(), signum)

    async def kill(self) -> None:
        """SIGKILL the node (a crash); `start()` brings it back on the same data."""
        pid = self.beam_pid()
        os.kill(pid, signal.SIGKILL)
        if self._process is not None:
            await asyncio.to_thread(self._process.wait, 30)
        while _alive(pid):  # noqa: ASYNC110 (a pid, not an event)
            await asyncio.sleep(0.05)
        for leftover in self._leftover_pids():  # erl_child_setup and friends
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
