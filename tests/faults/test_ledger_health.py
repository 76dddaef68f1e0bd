"""The SQLite ledger deleted under a running `herald run`: Herald notices, fails closed and
says so (/readyz 503 naming the ledger, `herald_ledger_up` 0, an error log naming the path),
sends nothing, dead-letters nothing and keeps the events in the broker; restarted on a new
ledger, it delivers every one of them exactly once and re-sends nothing it had sent before."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path

import aio_pika
import httpx

from herald.consumers.topology import DEAD_LETTER_QUEUE, queue_name
from tests.faults.harness import (
    Counts,
    HeraldProcess,
    Mailbox,
    account,
    herald_env,
    poll,
    publish,
    quote_events,
    run_id,
    wait_for_mail,
)

RETRY_DELAYS_MS = "[300, 1000, 2000]"  # as herald_env sets them: copies come back within 2 s


async def _ready_messages(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def _get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=2) as client:
        return await client.get(f"http://127.0.0.1:{port}{path}")


def _sample(metrics: str, name: str, labels: str = "") -> float | None:
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", metrics, re.MULTILINE)
    return None if found is None else float(found.group(1))


async def test_deleted_sqlite_ledger_fails_closed_and_loses_nothing(
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    first_ledger = tmp_path / "first"
    first_ledger.mkdir()
    database = first_ledger / "herald.db"
    port = unused_tcp_port_factory()
    herald = HeraldProcess(
        herald_env(
            vhost_url,
            mailbox.port,
            f"sqlite:///{database}",
            port,
            HERALD_RETRY_DELAYS_MS=RETRY_DELAYS_MS,
        ),
        tmp_path,
        port,
    )
    await herald.start()
    replacement: HeraldProcess | None = None
    try:
        await herald.wait_ready()
        before = quote_events(20, run_id())
        await publish(vhost_url, before)
        await wait_for_mail(mailbox, len(before), timeout=60)
        assert len(mailbox.received) == len(before)
        # Mailed is not yet acked (the ack follows the ledger's record): wait for every event
        # to be processed, or a late one is requeued by the deletion and counted as `during`.
        assert await poll(lambda: _processed(port, len(before)), timeout=30)

        # The operator's mistake: `rm herald.db*` while Herald runs.
        for file in first_ledger.glob("herald.db*"):
            file.unlink()
        deleted_at = time.monotonic()
        assert await poll(lambda: _status(port, 503), timeout=10), "readyz stayed 200"
        detected_after = time.monotonic() - deleted_at
        body = (await _get(port, "/readyz")).json()
        assert any("ledger" in reason and str(database) in reason for reason in body["reasons"])
        metrics = (await _get(port, "/metrics")).text
        assert _sample(metrics, "herald_ledger_up") == 0
        assert (_sample(metrics, "herald_ledger_errors_total", 'error="file_deleted"') or 0) >= 1

        during = quote_events(30, run_id())
        await publish(vhost_url, during)
        await asyncio.sleep(5)  # retry copies cycle at 0.3, 1 and 2 s: several attempts each
        sent_while_deleted = len(mailbox.received) - len(before)
        assert sent_while_deleted == 0, "nothing may be sent without a ledger"
        assert not database.exists(), "Herald must not create a new, empty ledger file"
        assert (await _get(port, "/readyz")).status_code == 503
        assert await _ready_messages(vhost_url, DEAD_LETTER_QUEUE) == 0
        # Consuming is paused while the ledger is away: the events wait in their queue,
        # untouched (not cycled through the retry queues)
        assert await _ready_messages(vhost_url, "herald.orders") == len(during)
        assert _sample((await _get(port, "/metrics")).text, "herald_consuming_paused") == 1
        log = (tmp_path / f"herald-{port}.log").read_text()
        assert f"SQLite file {database} was deleted" in log

        await herald.terminate()
        # Every event is still in the broker: back in its domain queue once the retry copies'
        # delays have passed (the process is gone, so none is held unacked).
        assert await poll(lambda: _depth_is(vhost_url, len(during)), timeout=20), (
            "the events published while the ledger was gone are not all in the broker"
        )

        # The runbook's recovery: restart on a new ledger file.
        second_ledger = tmp_path / "second"
        second_ledger.mkdir()
        port = unused_tcp_port_factory()
        replacement = HeraldProcess(
            herald_env(
                vhost_url,
                mailbox.port,
                f"sqlite:///{second_ledger / 'herald.db'}",
                port,
                HERALD_RETRY_DELAYS_MS=RETRY_DELAYS_MS,
            ),
            tmp_path,
            port,
        )
        await replacement.start()
        await replacement.wait_ready()
        await wait_for_mail(mailbox, len(before) + len(during), timeout=60)
        await asyncio.sleep(2)  # anything sent twice would arrive by now
        counts = account(before + during, mailbox)
        report(
            "SQLite ledger deleted while running",
            counts,
            f"sent_while_deleted={sent_while_deleted}",
            f"readyz_503_after={detected_after:.1f}s",
        )
        _assert_exactly_once(counts)
    finally:
        for process in (herald, replacement):
            running = process is not None and process.process is not None
            if running and process.process.returncode is None:  # type: ignore[union-attr]
                await process.terminate()  # type: ignore[union-attr]
        mailbox.stop()


async def _processed(port: int, count: int) -> bool:
    metrics = (await _get(port, "/metrics")).text
    return (_sample(metrics, "herald_events_processed_total", 'domain="orders"') or 0) >= count


async def _status(port: int, status: int) -> bool:
    try:
        return (await _get(port, "/readyz")).status_code == status
    except httpx.HTTPError:
        return False


async def _depth_is(amqp_url: str, expected: int) -> bool:
    return await _ready_messages(amqp_url, queue_name("orders")) == expected


def _assert_exactly_once(counts: Counts) -> None:
    assert counts.lost == 0, counts
    assert counts.duplicated == 0, counts
    assert counts.unexpected == 0, counts
