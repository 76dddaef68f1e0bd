"""A TCP proxy in the test process, between Herald and the broker or the mail server (the way
aio-pika's own tests put aiomisc's TCPProxy in between).

- `blackhole()`: stop forwarding in both directions but keep every socket open, and leave new
  connections hanging unanswered; data waits in the kernel's buffers, as packets a network
  drops would be retransmitted. `resume()` forwards again.
- `reset_all()`: close every connection with SO_LINGER 0, so both peers get a TCP RST.
- `cut_mid_frame()`: the next chunk the server sends is forwarded only in part, then both
  sides are reset (a truncated frame).
- `drop_on_amqp_ack(n)`: the next `n` times a client sends an AMQP `basic.ack` (method frame,
  class 60, method 80), forward what came before it, never the ack, and reset the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Coroutine
from dataclasses import dataclass, field

AMQP_HEADER = b"AMQP"
FRAME_METHOD = 1
FRAME_END = 0xCE
BASIC_ACK = (60, 80)


class _AmqpFrames:
    """Splits the client's byte stream into AMQP frames as it arrives."""

    def __init__(self) -> None:
        self.buffer = b""
        self.header_seen = False

    def feed(self, data: bytes) -> list[tuple[bytes, tuple[int, int] | None]]:
        """Complete frames (bytes, (class, method) of a method frame or None); a partial frame
        stays buffered until the rest arrives."""
        self.buffer += data
        frames: list[tuple[bytes, tuple[int, int] | None]] = []
        if not self.header_seen:
            if len(self.buffer) < 8:
                return frames
            frames.append((self.buffer[:8], None))
            self.buffer = self.buffer[8:]
            self.header_seen = True
        while len(self.buffer) >= 7:
            kind, _channel, size = struct.unpack(">BHI", self.buffer[:7])
            if len(self.buffer) < 7 + size + 1:
                break
            frame = self.buffer[: 7 + size + 1]
            self.buffer = self.buffer[7 + size + 1 :]
            method = None
            if kind == FRAME_METHOD and size >= 4:
                method = struct.unpack(">HH", frame[7:11])
            frames.append((frame, method))
        return frames


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    client_reader: asyncio.StreamReader
    server: asyncio.StreamWriter | None = None
    server_reader: asyncio.StreamReader | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def reset(self) -> None:
        for writer in (self.client, self.server):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()


@dataclass
class TcpProxy:
    """Listens on 127.0.0.1:`port` and forwards to 127.0.0.1:`target_port`."""

    port: int
    target_port: int
    amqp: bool = False  # parse the client's stream as AMQP frames (for drop_on_amqp_ack)
    links: set[_Link] = field(default_factory=set)
    connections_made: int = 0
    acks_dropped: int = 0
    _open: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None
    _cut_next: bool = False
    _drop_acks: int = 0

    async def start(self) -> None:
        self._open.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.reset_all()
        for link in list(self.links):
            for task in link.tasks:
                task.cancel()
            await asyncio.gather(*link.tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # Faults ----------------------------------------------------------------------------------

    def blackhole(self) -> None:
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    def reset_all(self) -> int:
        """RST every open connection; how many there were."""
        links = list(self.links)
        for link in links:
            link.reset()
        return len(links)

    def cut_mid_frame(self) -> None:
        self._cut_next = True

    @property
    def cut_pending(self) -> bool:
        return self._cut_next

    def drop_on_amqp_ack(self, times: int = 1) -> None:
        assert self.amqp, "an AMQP-aware proxy is needed"
        self._drop_acks = times

    # Forwarding ------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer, reader)
        self.links.add(link)
        try:
            await self._open.wait()  # blackholed: the connection hangs, unanswered
            try:
                link.server_reader, link.server = await asyncio.open_connection(
                    "127.0.0.1", self.target_port
                )
            except OSError:
                link.reset()
                return
            self.connections_made += 1
            link.tasks = [
                asyncio.create_task(_guarded(link, self._pump_client(link))),
                asyncio.create_task(_guarded(link, self._pump_server(link))),
            ]
            await asyncio.gather(*link.tasks, return_exceptions=True)
        finally:
            for task in link.tasks:
                task.cancel()
            for side in (link.client, link.server):
                if side is not None:
                    side.close()
            self.links.discard(link)

    async def _pump_client(self, link: _Link) -> None:
        assert link.server is not None
        frames = _AmqpFrames() if self.amqp else None
        while True:
            await self._open.wait()
            data = await link.client_reader.read(65536)
            await self._open.wait()  # blackholed while reading: hold the bytes
            if not data:
                with contextlib.suppress(OSError, RuntimeError):
                    link.server.write_eof()  # a clean close travels on as one
                return
            if frames is None:
                link.server.write(data)
            else:
                for frame, method in frames.feed(data):
                    if method == BASIC_ACK and self._drop_acks > 0:
                        self._drop_acks -= 1
                        self.acks_dropped += 1
                        await link.server.drain()
                        link.reset()  # the ack is never forwarded
                        return
                    link.server.write(frame)
            await link.server.drain()

    async def _pump_server(self, link: _Link) -> None:
        assert link.server_reader is not None
        while True:
            await self._open.wait()
            data = await link.server_reader.read(65536)
            await self._open.wait()
            if not data:
                with contextlib.suppress(OSError, RuntimeError):
                    link.client.write_eof()
                return
            if self._cut_next and len(data) > 1:
                self._cut_next = False
                link.client.write(data[: len(data) // 2])
                await link.client.drain()
                link.reset()
                return
            link.client.write(data)
            await link.client.drain()


async def _guarded(link: _Link, pump: Coroutine[None, None, None]) -> None:
    """A broken side breaks the whole link, as a cut cable would."""
    try:
        await pump
    except (ConnectionError, OSError):
        link.reset()
