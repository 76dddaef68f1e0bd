"""What the SMTP conversation costs per message, and what a pipelined client would give.

Sends the same pre-built email (one of Herald's own renderings, CRLF, dot-stuffing not needed)
N times over C connections to postfix's `smtp-sink`, three ways, each in the same process on
uvloop, and prints the CPU time per message (process time, so the client's own work only):

- `aiosmtplib`: what Herald's sender does per email (MAIL, RCPT, DATA as three awaited
  commands plus the body), with Herald's byte-identical DATA passes installed.
- `raw`: the same four round trips on a bare asyncio protocol, no library: the cost of the
  conversation itself in Python.
- `pipelined`: ESMTP PIPELINING (RFC 2920) on the same bare protocol: MAIL, RCPT and DATA
  written in one segment, the three replies read together, then the body: two round trips.

    .venv/bin/python bench/smtp_client.py --messages 20000 --connections 8

aiosmtplib has no PIPELINING support (it sends one command and waits for its reply). The two
bare clients are measuring instruments, not a replacement: they do no TLS, no AUTH, no
timeouts and no reply parsing beyond the status code.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import aiosmtplib
import uvloop

from herald.senders import smtp_data

SINK_PORT = 2599
SENDER = "bounces@herald.localhost"
RECIPIENT = "someone@example.com"


def sample_message() -> bytes:
    """One of Herald's real emails: the order confirmation as the gallery renders it."""
    from herald.renderers.email import EmailRenderer
    from herald.service.app import build_catalog_and_templates
    from herald.service.settings import Settings, load_config_file
    from herald.tools.preview import PreviewRequest, find_spec, preview

    settings = Settings()
    catalog, templates = build_catalog_and_templates()
    renderer = EmailRenderer(templates, load_config_file(settings.config).brand, settings.sender)
    spec = find_spec(catalog, "order_confirmation_new")
    return preview(spec, PreviewRequest(), renderer)[0].content


class _Replies(asyncio.Protocol):
    """Collects SMTP replies (final lines only) and wakes whoever waits for n of them."""

    def __init__(self) -> None:
        self.transport: asyncio.WriteTransport | None = None
        self._buffer = b""
        self._codes: list[int] = []
        self._want = 0
        self._waiter: asyncio.Future[list[int]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while b"\r\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\r\n", 1)
            if len(line) >= 4 and line[3:4] == b"-":
                continue  # a continuation line of a multi-line reply
            self._codes.append(int(line[:3]))
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and len(self._codes) >= self._want:
            codes, self._codes = self._codes[: self._want], self._codes[self._want :]
            waiter, self._waiter = self._waiter, None
            waiter.set_result(codes)

    def replies(self, count: int) -> Awaitable[list[int]]:
        self._want = count
        self._waiter = asyncio.get_running_loop().create_future()
        self._wake()
        return self._waiter

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


async def _bare_connection() -> _Replies:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_Replies, "127.0.0.1", SINK_PORT)
    await protocol.replies(1)  # greeting
    protocol.send(b"EHLO bench.localhost\r\n")
    await protocol.replies(1)
    return protocol


async def raw_sender(message: bytes) -> Callable[[], Awaitable[None]]:
    protocol = await _bare_connection()
    body = message + b".\r\n"
    mail = f"MAIL FROM:<{SENDER}>\r\n".encode()
    rcpt = f"RCPT TO:<{RECIPIENT}>\r\n".encode()

    async def send() -> None:
        for command in (mail, rcpt, b"DATA\r\n"):
            protocol.send(command)
            await protocol.replies(1)
        protocol.send(body)
        (code,) = await protocol.replies(1)
        assert code == 250, code

    return send


async def pipelined_sender(message: bytes) -> Callable[[], Awaitable[None]]:
    protocol = await _bare_connection()
    body = message + b".\r\n"
    commands = f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RECIPIENT}>\r\nDATA\r\n".encode()

    async def send() -> None:
        protocol.send(commands)
        codes = await protocol.replies(3)
        assert codes == [250, 250, 354], codes
        protocol.send(body)
        (code,) = await protocol.replies(1)
        assert code == 250, code

    return send


async def aiosmtplib_sender(message: bytes) -> Callable[[], Awaitable[None]]:
    smtp_data.install()
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=SINK_PORT, start_tls=False)
    await client.connect()
    await client.ehlo()

    async def send() -> None:
        await client.mail(SENDER)
        await client.rcpt(RECIPIENT)
        reply = await client.data(message)
        assert reply.code == 250, reply

    return send


SENDERS: dict[str, Callable[[bytes], Awaitable[Callable[[], Awaitable[None]]]]] = {
    "aiosmtplib": aiosmtplib_sender,
    "raw": raw_sender,
    "pipelined": pipelined_sender,
}


async def measure(kind: str, message: bytes, messages: int, connections: int) -> float:
    """CPU microseconds per message for `messages` sends over `connections` connections."""
    senders = [await SENDERS[kind](message) for _ in range(connections)]
    share = messages // connections

    async def drive(send: Callable[[], Awaitable[None]]) -> None:
        for _ in range(share):
            await send()

    started = time.process_time()
    await asyncio.gather(*(drive(send) for send in senders))
    return (time.process_time() - started) / (share * connections) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(sink).exists():
        raise SystemExit("bench/smtp_client.py needs postfix's smtp-sink (apt-get install postfix)")
    process = subprocess.Popen(
        [sink, "-u", "postfix", f"127.0.0.1:{SINK_PORT}", "1024"], stdout=subprocess.DEVNULL
    )
    try:
        time.sleep(0.5)
        message = sample_message()
        results: dict[str, list[float]] = {kind: [] for kind in SENDERS}
        for _ in range(args.rounds):  # interleaved, so the machine's drift hits all three
            for kind in SENDERS:
                results[kind].append(
                    uvloop.run(measure(kind, message, args.messages, args.connections))
                )
        print(
            f"{len(message):,} byte email, {args.messages:,} messages, "
            f"{args.connections} connections"
        )
        for kind, figures in results.items():
            listed = ", ".join(f"{figure:,.0f}" for figure in figures)
            median = sorted(figures)[len(figures) // 2]
            print(f"{kind:<11} CPU per message: median {median:,.0f} us ({listed})")
    finally:
        process.terminate()


if __name__ == "__main__":
    main()
