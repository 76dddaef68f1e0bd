"""Rows 13 and 14 of the fault matrix: Herald crashing at each point of a delivery, and a poison
message that kills it every time (HERALD_FAULT_AT, herald/faultpoints.py). Checked at the SMTP
server: lost = 0, and duplicated = 0 except after the 250 (same Message-ID)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aio_pika
import pytest

from herald.consumers.poison import MAX_ATTEMPTS_ALONE
from herald.consumers.topology import declare
from tests.conftest import _rabbitmqctl
from tests.faults.harness import (
    HeraldProcess,
    Mailbox,
    account,
    assert_no_loss,
    dead_letters,
    publish,
    quote_events,
    run_id,
    sqlite_url,
    start_herald,
    stop_herald,
    wait_for_mail,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CRASHED = 70  # herald/faultpoints.py EXIT_CODE


async def wait_exit(process: HeraldProcess, timeout: float) -> int | None:
    assert process.process is not None
    try:
        return await asyncio.wait_for(process.process.wait(), timeout)
    except TimeoutError:
        return None


@pytest.mark.parametrize(
    "point", ["on_receive", "after_claim", "after_250", "after_record", "before_ack"]
)
async def test_crash_at_each_point_of_a_delivery(
    point: str,
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    # Given Herald armed to exit at `point` when event number 7 of 40 reaches it, one delivery
    # at a time (with a wider prefetch the crash also strikes concurrent deliveries at random
    # points, some in their own 250-to-record window: that is row 12's SIGKILL scenario)
    run = run_id()
    events = quote_events(40, run)
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    port = unused_tcp_port_factory()
    herald = await start_herald(
        vhost_url,
        mailbox,
        sqlite_url(tmp_path),
        tmp_path,
        port,
        HERALD_PREFETCH="1",
        HERALD_FAULT_AT=f"{point}:{run}-7",
    )
    try:
        # When the events arrive, it crashes there
        await publish(vhost_url, events)
        assert await wait_exit(herald, 60) == CRASHED, "the fault point was reached"
        # and is restarted without the fault, as a supervisor would
        herald = await start_herald(vhost_url, mailbox, sqlite_url(tmp_path), tmp_path, port)
        await wait_for_mail(mailbox, len(events), timeout=90)
        # Then every email arrived; a second copy only from the 250-to-record window
        counts = account(events, mailbox)
        report(f"crash at {point}", counts)
        if point == "after_250":
            assert_no_loss(counts, duplicates_allowed=True)
            assert counts.duplicated <= 1, counts
            copies = [
                mail for mail in mailbox.received if mail.recipient == f"r7.{run}@load.example"
            ]
            assert len(copies) == counts.duplicated + 1, "only the crashed delivery is repeated"
        else:
            assert_no_loss(counts)
    finally:
        await stop_herald(herald)
        mailbox.stop()


@pytest.mark.parametrize("prefetch", ["1", "64"])
async def test_poison_message_that_kills_the_process_every_time(
    prefetch: str,
    scratch_vhosts: Callable[[str], str],
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    """Row 14. The domain queues declare `x-delivery-limit` 50; a policy `delivery-limit` 3 on
    the scenario's vhost lowers the effective limit to min(policy, argument) = 3 without
    touching Herald's declaration (measured: the policy applies, and RabbitMQ 3.10 counts each
    consumer-connection loss as a delivery, for every message in flight). With a prefetch of
    64 every crash charges the neighbours too, so the broker's limit alone would dead-letter
    them with the poison: Herald's guard (consumers.poison) must take the poison out first."""
    vhost = scratch_vhosts("herald-poison")
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    limit = 3
    connection = await aio_pika.connect(url)
    async with connection:
        await declare(await connection.channel(), retry_delays_ms=(300, 1000, 2000))
    _rabbitmqctl(
        "set_policy",
        "-p",
        vhost,
        "--apply-to",
        "queues",
        "low-delivery-limit",
        r"^herald\.orders$",
        f'{{"delivery-limit": {limit}}}',
    )
    run = run_id()
    events = quote_events(40, run)
    poison = quote_events(1, f"{run}-poison")[0]
    # Given 20 events, the poison, and 20 more, waiting for Herald
    await publish(url, [*events[:20], poison, *events[20:]])
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    port = unused_tcp_port_factory()
    armed = {"HERALD_FAULT_AT": f"on_receive:{run}-poison", "HERALD_PREFETCH": prefetch}
    crashes = 0
    begun = time.monotonic()
    herald = await start_herald(
        url, mailbox, sqlite_url(tmp_path), tmp_path, port, ready=False, **armed
    )
    try:
        # When a supervisor restarts Herald (the fault still armed) each time it dies
        while crashes <= 60:
            # Generous: under CI load (4 workers on 2 cores) a start alone can take seconds
            code = await wait_exit(herald, 30)
            if code is None:
                break  # it stays up: the poison is gone
            assert code == CRASHED
            crashes += 1
            herald = await start_herald(
                url, mailbox, sqlite_url(tmp_path), tmp_path, port, ready=False, **armed
            )
        loop_seconds = time.monotonic() - begun - 30
        # Then the poison is in herald.dead-letter for delivery_limit, and every other event
        # was delivered once
        await wait_for_mail(mailbox, len(events), timeout=60)
        parked = await dead_letters(url)
        counts = account(events, mailbox)
        report(
            f"poison message kills the process every time (prefetch {prefetch})",
            counts,
            f"crashes={crashes} limit={limit} crash_loop={loop_seconds:.1f}s",
            f"dead_lettered={len(parked)}: "
            + ", ".join(
                f"{item['message_id']} ({item['headers'].get('x-reject-reason')})"
                for item in parked
            ),
        )
        # Herald's poison guard takes redelivered messages alone and counts the crashes each
        # one caused: after MAX_ATTEMPTS_ALONE of them, the next delivery is dead-lettered for
        # delivery_limit, before the broker's limit charges the neighbours held beside it
        assert crashes == MAX_ATTEMPTS_ALONE + 1, "the first crash, then the attempts alone"
        assert [item["message_id"] for item in parked] == [poison["id"]]
        assert parked[0]["headers"]["x-reject-reason"] == "delivery_limit"
        assert parked[0]["headers"]["x-rejected-by"] == "herald"
        assert_no_loss(counts)
    finally:
        await stop_herald(herald)
        mailbox.stop()
