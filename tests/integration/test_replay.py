"""`herald replay` and `herald deliveries find` against the real broker, ledger and SMTP server.

Dead letters come from the real paths: Herald's own consumer dead-letters bad input, RabbitMQ
dead-letters a message past a domain queue's delivery limit, and most are published to
`herald.dlx` with exactly the headers Herald's consumer writes (EVENTS.md 11, plus
`x-original-queue`), or with those an older version wrote (no `x-original-queue`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from herald.consumers.topology import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    DELIVERY_LIMIT,
    EVENTS_EXCHANGE,
    queue_name,
)
from herald.ledger.audit import AuditLog
from herald.ledger.queue_marks import QueueMarks
from herald.ledger.store import SqlLedger
from herald.schemas.examples import load_example
from herald.service.app import Service, build_service
from herald.tools.replay import Filters, list_dead_letters, requeue
from tests.conftest import SmtpServer
from tests.integration.conftest import Broker, metric, service_settings, wait_for_metric
from tests.support import herald_command

pytestmark = pytest.mark.integration
HERALD = str(Path(sys.executable).parent / "herald")
CONTENT_TYPE = "application/cloudevents+json"


def event(example: str, **changes: Any) -> dict[str, Any]:
    document = load_example(example)
    document["id"] = f"{example}-{uuid.uuid4().hex[:8]}"
    document.update(changes)
    return document


async def herald_dead_letter(
    broker: Broker,
    document: dict[str, Any] | bytes,
    reason: str,
    *,
    routing_key: str | None = None,
    rejected_at: datetime | None = None,
    message_id: str | None = None,
    original_queue: str | None = "",
    extra_headers: dict[str, Any] | None = None,
) -> None:
    """A dead letter exactly as Herald's consumer writes it (EVENTS.md 11): `x-original-queue`
    is the queue of the routing key's domain unless given; None leaves it out, as versions
    before it did. `extra_headers` are what such an older version kept of a publisher's."""
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    key = routing_key or (document["type"] if isinstance(document, dict) else "orders.x")
    headers: dict[str, Any] = {
        **(extra_headers or {}),
        "x-reject-reason": reason,
        "x-reject-detail": "data.order: field required",
        "x-rejected-at": (rejected_at or datetime.now(UTC)).isoformat(timespec="milliseconds"),
        "x-original-exchange": EVENTS_EXCHANGE,
        "x-original-routing-key": key,
        "x-rejected-by": "herald",
    }
    if original_queue is not None:
        headers["x-original-queue"] = original_queue or queue_name(key.split(".", 1)[0])
    exchange = await broker.channel.get_exchange(DEAD_LETTER_EXCHANGE)
    await exchange.publish(
        aio_pika.Message(
            body=body,
            content_type=CONTENT_TYPE,
            message_id=message_id or (document["id"] if isinstance(document, dict) else None),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            timestamp=datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
            app_id="orders-service",
            headers=headers,
        ),
        routing_key=key,
        timeout=10,
    )


async def get_one(queue: AbstractQueue, *, no_ack: bool) -> AbstractIncomingMessage:
    """The next message of `queue`, waiting up to 5 s for one."""
    for _ in range(100):
        message = await queue.get(no_ack=no_ack, fail=False)
        if message is not None:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"no message in {queue.name}")


async def broker_dead_letter(
    broker: Broker,
    document: dict[str, Any],
    *,
    routing_key: str | None = None,
    headers: dict[str, Any] | None = None,
    foreign_queue: bool = False,
) -> None:
    """A message RabbitMQ itself dead-letters: published to portal.events (with a publisher's
    `headers`), it fails in Herald's domain queue past its x-delivery-limit; with
    `foreign_queue`, in a queue of someone else's bound to `herald.dlx`. No Herald runs."""
    key = routing_key or document["type"]
    exchange = await broker.channel.get_exchange(EVENTS_EXCHANGE)
    if foreign_queue:
        limit = 1
        queue = await broker.channel.declare_queue(
            f"herald-test-limit-{uuid.uuid4().hex[:8]}",
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": limit,
                "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            },
        )
        await queue.bind(exchange, routing_key=key)
    else:
        limit = DELIVERY_LIMIT
        queue = await broker.channel.get_queue(queue_name(key.split(".", 1)[0]))
    await exchange.publish(
        aio_pika.Message(
            body=json.dumps(document).encode(),
            content_type=CONTENT_TYPE,
            message_id=document["id"],
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=headers or {},
        ),
        routing_key=key,
        timeout=10,
    )
    if foreign_queue:
        await queue.unbind(exchange, routing_key=key)
        domain_queue = await broker.channel.get_queue(queue_name(key.split(".", 1)[0]))
        await get_one(domain_queue, no_ack=True)  # the copy portal.events gave Herald
    for _ in range(limit + 1):  # one failed delivery more than the limit
        message = await get_one(queue, no_ack=False)
        await message.reject(requeue=True)
    for _ in range(100):  # the broker dead-letters it a moment after the last reject
        if await broker.queue_depth(queue.name) == 0:
            break
        await asyncio.sleep(0.05)
    if foreign_queue:
        await queue.delete(if_unused=False, if_empty=False)


async def dead_letter_ids(broker: Broker) -> list[str | None]:
    """The ids in the dead-letter queue, in order (browsed and returned, not consumed)."""
    listing = await list_dead_letters(broker_url(broker), Filters())
    return [entry.event_id for entry in listing.entries]


def broker_url(broker: Broker) -> str:
    return str(broker.connection.url)


async def cli(
    amqp_url: str, database_url: str, *args: str, check: bool = True
) -> tuple[int, str, str]:
    code, stdout, stderr = await herald_command(
        *args,
        HERALD_AMQP_URL=amqp_url,
        HERALD_DATABASE_URL=database_url,
        HERALD_OPERATOR="sre-test",
        COLUMNS="250",
    )
    if check:
        assert code == 0, stderr[-2000:]
    return code, stdout, stderr


@pytest.fixture
def database_path(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/herald.db"


@pytest.fixture
async def replay_ledger(database_path: str) -> AsyncIterator[SqlLedger]:
    ledger = await SqlLedger.open(database_path)
    yield ledger
    await ledger.close()


@pytest.fixture
def audit(replay_ledger: SqlLedger) -> AuditLog:
    return AuditLog(replay_ledger)


@pytest.fixture
async def mixed_dead_letters(broker: Broker) -> dict[str, dict[str, Any]]:
    """Four dead letters of different reasons, types, sources and ages, in this order."""
    old = datetime.now(UTC) - timedelta(days=2)
    documents = {
        "fixed": event("orders.quote.created"),  # valid under the current schemas
        "still_bad": event("orders.order.placed"),
        "users": event("users.user.invited", source="/identity-service"),
    }
    documents["still_bad"]["data"].pop("order")
    await herald_dead_letter(broker, documents["fixed"], "schema_violation", rejected_at=old)
    await herald_dead_letter(broker, documents["still_bad"], "schema_violation")
    await herald_dead_letter(
        broker,
        b"{not json",
        "malformed_json",
        routing_key="orders.order.placed",
        message_id="raw-1",
    )
    await herald_dead_letter(broker, documents["users"], "schema_violation")
    return documents


async def test_list_filters_and_does_not_consume(
    broker: Broker, mixed_dead_letters: dict[str, dict[str, Any]], replay_ledger: SqlLedger
) -> None:
    url = broker_url(broker)
    fixed, still_bad, users = (mixed_dead_letters[k]["id"] for k in ("fixed", "still_bad", "users"))
    order = [fixed, still_bad, "raw-1", users]
    assert await dead_letter_ids(broker) == order

    async def ids(**filters: Any) -> list[str | None]:
        listing = await list_dead_letters(url, Filters(**filters))
        assert listing.queue_total == 4 and listing.read == 4 and listing.complete
        return [entry.event_id for entry in listing.entries]

    assert await ids(reasons=("malformed_json",)) == ["raw-1"]
    assert await ids(type_glob="orders.*") == [fixed, still_bad, "raw-1"]
    assert await ids(type_glob="users.user.invited") == [users]
    assert await ids(source_glob="/identity-*") == [users]
    assert await ids(since=datetime.now(UTC) - timedelta(hours=1)) == [still_bad, "raw-1", users]
    assert await ids(until=datetime.now(UTC) - timedelta(days=1)) == [fixed]
    assert await ids(ids=(users, fixed)) == [fixed, users]
    assert await ids(reasons=("schema_violation",), type_glob="orders.*") == [fixed, still_bad]
    # Reading consumed nothing and kept the order
    assert await broker.queue_depth(DEAD_LETTER_QUEUE) == 4
    assert await dead_letter_ids(broker) == order
    # A full read tells the ledger the exact oldest rejection time (the metric's source)
    marks = QueueMarks(replay_ledger)
    await marks.set_oldest(DEAD_LETTER_QUEUE, datetime.now(UTC))  # the watch's rough mark
    entries = (await list_dead_letters(url, Filters(), marks=marks)).entries
    oldest = min(entry.rejected_at for entry in entries if entry.rejected_at)
    assert oldest < datetime.now(UTC) - timedelta(days=1)
    assert await marks.observe(DEAD_LETTER_QUEUE, 4) == oldest


async def test_list_and_show_commands(
    amqp_url: str,
    database_path: str,
    broker: Broker,
) -> None:
    teams = event("interop.teams.subscription_created")
    await herald_dead_letter(broker, teams, "schema_violation")
    await herald_dead_letter(
        broker, b"\xff\xfe", "malformed_json", routing_key="orders.order.placed", message_id="raw-2"
    )
    _, output, _ = await cli(amqp_url, database_path, "replay", "list", "--format", "json")
    listing = json.loads(output)
    assert listing["queue_total"] == 2 and listing["matched"] == 2
    assert listing["summary"]["by_reason"] == {"malformed_json": 1, "schema_violation": 1}
    first = listing["messages"][0]
    assert (first["id"], first["type"], first["source"]) == (
        teams["id"],
        "interop.teams.subscription_created",
        "/interop-service",
    )
    assert first["age_seconds"] >= 0 and first["rejected_at"]
    _, table, _ = await cli(amqp_url, database_path, "replay", "list", "--type", "orders.*")
    assert "raw-2" in table and teams["id"] not in table and "malformed_json 1" in table
    _, shown, _ = await cli(amqp_url, database_path, "replay", "show", teams["id"])
    assert "x-reject-reason" in shown and "schema_violation" in shown
    assert '"action_url": "<redacted>"' in shown
    assert "token=" not in shown and "REDACTED-af97" not in shown
    assert '"licensed_capacity": 20' in shown
    code, _, missing = await cli(amqp_url, database_path, "replay", "show", "nope", check=False)
    assert code == 1 and "no dead letter" in missing
    # An unreachable broker ends the command in one line naming it (README "Exit codes": 3)
    code, _, said = await cli(
        "amqp://guest:guest@127.0.0.1:1/", database_path, "replay", "list", check=False
    )
    assert code == 3 and "Traceback" not in said
    assert said.strip() == (
        "herald: cannot connect to the broker: connection refused (127.0.0.1:1, vhost /, user guest)"
    )
    assert await broker.queue_depth(DEAD_LETTER_QUEUE) == 2


async def test_dry_run_changes_nothing(
    amqp_url: str,
    database_path: str,
    broker: Broker,
    mixed_dead_letters: dict[str, dict[str, Any]],
    tmp_path: Path,
) -> None:
    before = tmp_path / "before.jsonl"
    after = tmp_path / "after.jsonl"
    await cli(amqp_url, database_path, "replay", "export", str(before))
    _, output, _ = await cli(
        amqp_url, database_path, "replay", "requeue", "--dry-run", "--format", "json"
    )
    report = json.loads(output)
    assert report["dry_run"] is True
    assert report["counts"] == {
        "selected": 4,
        "requeued": 2,  # would requeue: the fixed orders event and the users event
        "still_invalid": 2,
        "ignored": 0,
        "forced": 0,
        "unroutable": 0,
    }
    verdicts = {m["id"]: (m["verdict"], m["reason"]) for m in report["messages"]}
    assert verdicts[mixed_dead_letters["fixed"]["id"]] == ("valid", None)
    assert verdicts[mixed_dead_letters["still_bad"]["id"]] == ("invalid", "schema_violation")
    assert verdicts["raw-1"] == ("invalid", "malformed_json")
    await cli(amqp_url, database_path, "replay", "export", str(after))
    assert before.read_bytes() == after.read_bytes()
    _, output, _ = await cli(amqp_url, database_path, "replay", "audit", "--format", "json")
    (entry,) = json.loads(output)
    assert (entry["action"], entry["dry_run"], entry["outcome"]) == ("requeue", True, "ok")
    assert entry["counts"]["requeued"] == 2
    assert await broker.queue_depth(queue_name("orders")) == 0
    assert await broker.queue_depth(queue_name("users")) == 0


async def test_requeue_sends_fixed_messages_once_and_keeps_the_rest(
    amqp_url: str,
    smtp_server: SmtpServer,
    tmp_path: Path,
    broker: Broker,
    mixed_dead_letters: dict[str, dict[str, Any]],
    audit: AuditLog,
) -> None:
    # Given Herald running, and the dead letters of an older version plus one RabbitMQ
    # dead-lettered past a delivery limit
    limited = event("orders.quote.accepted")
    await broker_dead_letter(broker, limited)
    herald = await build_service(service_settings(amqp_url, smtp_server, tmp_path))
    await herald.start()
    try:
        listed = (await list_dead_letters(amqp_url, Filters(ids=(limited["id"],)))).entries
        assert [entry.reason for entry in listed] == ["delivery_limit"]
        assert listed[0].event_type == "orders.quote.accepted"
        # When the SRE requeues everything
        report = await requeue(amqp_url, Filters(), audit, actor="sre-test")
        # Then the valid ones were republished and sent once; the invalid stayed, in order
        assert report.counts() == {
            "selected": 5,
            "requeued": 3,
            "still_invalid": 2,
            "ignored": 0,
            "forced": 0,
            "unroutable": 0,
        }
        assert await dead_letter_ids(broker) == [mixed_dead_letters["still_bad"]["id"], "raw-1"]
        await wait_for_metric(herald, "herald_events_processed_total", 2, domain="orders")
        await wait_for_metric(herald, "herald_events_processed_total", 1, domain="users")
        sent = len(smtp_server.received)
        assert sent >= 3
        assert metric(herald, "herald_events_dead_lettered_total") == 0
        # And requeueing an already delivered event (its dead letter imported again) sends
        # nothing: the ledger knows it
        await herald_dead_letter(broker, mixed_dead_letters["fixed"], "schema_violation")
        again = await requeue(
            amqp_url, Filters(ids=(mixed_dead_letters["fixed"]["id"],)), audit, actor="sre-test"
        )
        assert again.requeued == 1
        await wait_for_metric(herald, "herald_events_duplicate_total", 1, domain="orders")
        await asyncio.sleep(0.5)
        assert len(smtp_server.received) == sent
        # The republished copies carried the replay headers and the original routing key
        assert await broker.queue_depth(DEAD_LETTER_QUEUE) == 2
    finally:
        await herald.stop()
    entries = await audit.entries()
    assert [(e.action, e.outcome, e.counts["requeued"]) for e in entries] == [
        ("requeue", "ok", 1),
        ("requeue", "ok", 3),
    ]
    assert entries[1].actor == "sre-test" and entries[1].finished_at is not None


async def test_replayed_copy_headers_and_destination(
    broker: Broker, audit: AuditLog, amqp_url: str
) -> None:
    document = event("orders.quote.created")
    await herald_dead_letter(broker, document, "schema_violation")
    # No Herald is consuming: the copy waits in herald.orders for us to read
    report = await requeue(amqp_url, Filters(), audit, actor="sre-test")
    assert report.requeued == 1
    copy = await get_one(await broker.channel.get_queue(queue_name("orders")), no_ack=True)
    assert copy.body == json.dumps(document).encode()
    assert copy.exchange == "" and copy.routing_key == "herald.orders"
    assert (copy.content_type, copy.message_id, copy.app_id) == (
        CONTENT_TYPE,
        document["id"],
        "orders-service",
    )
    assert copy.timestamp is not None
    assert copy.timestamp.replace(tzinfo=UTC) == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    headers = copy.headers or {}
    assert headers["x-herald-original-routing-key"] == "orders.quote.created"
    assert headers["x-herald-replay-count"] == 1
    assert headers["x-herald-replayed-by"] == "sre-test"
    assert datetime.fromisoformat(str(headers["x-herald-replayed-at"])) <= datetime.now(UTC)
    assert headers["x-reject-reason"] == "schema_violation"  # the history is kept
    assert headers.get("x-delivery-count", 0) == 0  # the browses' count was not carried over
    assert await broker.queue_depth(DEAD_LETTER_QUEUE) == 0


async def test_force_limit_and_rate(broker: Broker, audit: AuditLog, amqp_url: str) -> None:
    bad = [event("orders.order.placed") for _ in range(2)]
    for document in bad:
        document["data"].pop("order")
        await herald_dead_letter(broker, document, "schema_violation")
    good = [event("orders.quote.created") for _ in range(5)]
    for document in good:
        await herald_dead_letter(broker, document, "schema_violation")
    # --limit: only the first two matching
    limited = await requeue(
        amqp_url, Filters(type_glob="orders.quote.*"), audit, actor="t", limit=2
    )
    assert (limited.selected, limited.requeued) == (2, 2)
    # --rate: 3 messages at 10 per second take at least 0.2 s (the pacing, not a benchmark)
    started = asyncio.get_running_loop().time()
    paced = await requeue(amqp_url, Filters(type_glob="orders.quote.*"), audit, actor="t", rate=10)
    assert paced.requeued == 3
    assert asyncio.get_running_loop().time() - started >= 0.2
    # --force: the still-invalid go too
    forced = await requeue(amqp_url, Filters(), audit, actor="t", force=True)
    assert (forced.requeued, forced.forced, forced.still_invalid) == (2, 2, 0)
    assert await broker.queue_depth(DEAD_LETTER_QUEUE) == 0
    assert await broker.queue_depth(queue_name("orders")) == 7


async def test_export_import_round_trips_exactly_and_purge(
    amqp_url: str,
    database_path: str,
    broker: Broker,
    mixed_dead_letters: dict[str, dict[str, Any]],
    tmp_path: Path,
) -> None:
    await broker_dead_letter(broker, event("orders.quote.rejected"))
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    await cli(amqp_url, database_path, "replay", "export", str(first))
    lines = first.read_text().splitlines()
    assert len(lines) == 5
    exported = json.loads(lines[-1])
    assert "x-death" in exported["headers"]  # RabbitMQ's table, kept with its types
    # purge needs --yes, and honours filters
    code, _, said = await cli(amqp_url, database_path, "replay", "purge", check=False)
    assert code == 2 and "--yes" in said
    assert await broker.queue_depth(DEAD_LETTER_QUEUE) == 5
    await cli(amqp_url, database_path, "replay", "purge", "--reason", "malformed_json", "--yes")
    assert "raw-1" not in await dead_letter_ids(broker)
    await cli(amqp_url, database_path, "replay", "purge", "--yes")
    assert await broker.queue_depth(DEAD_LETTER_QUEUE) == 0
    # import puts back exactly what was exported: bytes, properties, headers, routing key
    _, said, _ = await cli(amqp_url, database_path, "replay", "import", str(first))
    assert "imported 5" in said
    await cli(amqp_url, database_path, "replay", "export", str(second))
    assert second.read_text() == first.read_text()
    # and the audit shows who did what
    _, output, _ = await cli(amqp_url, database_path, "replay", "audit", "--format", "json")
    trail = json.loads(output)
    assert [(row["action"], row["outcome"]) for row in trail] == [
        ("import", "ok"),
        ("purge", "ok"),
        ("purge", "ok"),
    ]
    assert trail[0]["counts"] == {"imported": 5}
    assert trail[1]["counts"] == {"purged": 4}
    assert trail[2]["filters"] == {"reasons": ["malformed_json"]}
    assert {row["actor"] for row in trail} == {"sre-test"}


async def test_killed_mid_requeue_loses_nothing(
    amqp_url: str, database_path: str, broker: Broker
) -> None:
    # Given 60 valid dead letters and no Herald consuming
    documents = [event("orders.quote.created") for _ in range(60)]
    for document in documents:
        await herald_dead_letter(broker, document, "schema_violation")
    # When the tool is killed with SIGKILL while requeueing at 40 per second
    env = {**os.environ, "HERALD_AMQP_URL": amqp_url, "HERALD_DATABASE_URL": database_path}
    process = await asyncio.create_subprocess_exec(
        HERALD,
        "replay",
        "requeue",
        "--rate",
        "40",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    for _ in range(400):
        if await broker.queue_depth(queue_name("orders")) >= 10:
            break
        await asyncio.sleep(0.025)
    process.send_signal(signal.SIGKILL)
    await process.wait()
    await asyncio.sleep(0.5)  # the broker returns the held messages when the connection drops
    # Then every message is in the dead-letter queue or was republished (perhaps both)
    remaining = set(await dead_letter_ids(broker))
    republished: set[str | None] = set()
    queue = await broker.channel.get_queue(queue_name("orders"))
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        republished.add(message.message_id)
    assert 10 <= len(republished) < 60, "the kill landed mid-requeue"
    assert {document["id"] for document in documents} <= remaining | republished
    assert remaining, "the kill landed before the end"


async def test_deliveries_find(
    amqp_url: str,
    smtp_server: SmtpServer,
    tmp_path: Path,
    broker: Broker,
) -> None:
    database = f"sqlite:///{tmp_path}/herald.db"
    herald: Service = await build_service(service_settings(amqp_url, smtp_server, tmp_path))
    await herald.start()
    try:
        smtp_server.scripted_replies.append("550 5.1.1 mailbox unavailable")
        document = event("orders.quote.created")
        await broker.publish(document)
        await wait_for_metric(herald, "herald_events_processed_total", 1, domain="orders")
    finally:
        await herald.stop()
    _, output, _ = await cli(
        amqp_url, database, "deliveries", "find", "--event-id", document["id"], "--format", "json"
    )
    records = json.loads(output)
    assert records, "the ledger knows the event's deliveries"
    assert {r["event_id"] for r in records} == {document["id"]}
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 1 and "550" in failed[0]["detail"]
    assert all(  # the refused email was rendered too: its provenance is recorded
        (r["locale"], r["brand"], len(r["template_version"])) == ("en", "default", 16)
        for r in records
    )
    recipient = records[0]["recipient"]
    _, output, _ = await cli(
        amqp_url, database, "deliveries", "find", "--recipient", recipient.upper(), "--since", "1h"
    )
    assert records[0]["message_id"] in output and recipient in output
    _, output, _ = await cli(
        amqp_url, database, "deliveries", "find", "--recipient", "nobody@nowhere.example"
    )
    assert "nothing in the ledger" in output
    code, _, said = await cli(amqp_url, database, "deliveries", "find", check=False)
    assert code == 2 and "exactly one" in said


# Bodies too deep to parse ------------------------------------------------------------------

DEEP_BODIES = {
    "object-1000": b'{"a":' * 1000 + b"1" + b"}" * 1000,
    "array-100000": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("shape", sorted(DEEP_BODIES))
async def test_a_deep_dead_letter_breaks_no_command(
    amqp_url: str, database_path: str, broker: Broker, tmp_path: Path, shape: str
) -> None:
    # Given a deeply nested body between two ordinary dead letters
    before, after = event("orders.quote.created"), event("users.user.invited")
    await herald_dead_letter(broker, before, "schema_violation")
    await herald_dead_letter(
        broker, DEEP_BODIES[shape], "malformed_json", routing_key="orders.x", message_id="deep-1"
    )
    await herald_dead_letter(broker, after, "schema_violation")
    order = [before["id"], "deep-1", after["id"]]

    async def herald(*args: str) -> str:
        code, output, said = await cli(amqp_url, database_path, "replay", *args, check=False)
        assert code == 0 and "Traceback" not in said, said[-1500:]
        return output

    # Then every command works, and sees all three
    listing = json.loads(await herald("list", "--format", "json"))
    assert [m["id"] for m in listing["messages"]] == order
    assert listing["messages"][1]["reason"] == "malformed_json"
    assert "deep-1" in await herald("list", "--reason", "malformed_json")
    assert before["id"] in await herald("list", "--source", "/orders*")
    shown = await herald("show", "deep-1")
    assert "x-reject-reason" in shown and DEEP_BODIES[shape][:40].decode() in shown
    assert len(shown) < 20_000  # the raw body, truncated
    assert f'"id": "{before["id"]}"' in await herald("show", before["id"])
    report = json.loads(await herald("requeue", "--dry-run", "--format", "json"))
    assert report["counts"]["selected"] == 3 and report["counts"]["requeued"] == 2
    verdicts = {m["id"]: (m["verdict"], m["reason"]) for m in report["messages"]}
    assert verdicts["deep-1"] == ("invalid", "malformed_json")
    exported = tmp_path / "all.jsonl"
    await herald("export", str(exported))
    assert len(exported.read_text().splitlines()) == 3
    # (`show` stops at the match: what it read may now be behind the rest; nothing is lost)
    assert sorted(map(str, await dead_letter_ids(broker))) == sorted(order)
    # And the others can be requeued and the deep one purged around it
    await herald("requeue", "--type", "users.*")
    assert await broker.queue_depth(queue_name("users")) == 1
    assert "purged 1" in await herald("purge", "--id", "deep-1", "--yes")
    assert await dead_letter_ids(broker) == [before["id"]]


async def test_a_deep_body_dead_lettered_by_herald_can_be_listed_and_shown(
    amqp_url: str, database_path: str, smtp_server: SmtpServer, tmp_path: Path, broker: Broker
) -> None:
    # Given Herald's consumer dead-lettered a body nested 1,000 levels deep
    herald = await build_service(service_settings(amqp_url, smtp_server, tmp_path))
    await herald.start()
    try:
        await broker.publish(
            DEEP_BODIES["object-1000"], routing_key="orders.quote.created", message_id="deep-2"
        )
        await wait_for_metric(herald, "herald_events_dead_lettered_total", 1)
    finally:
        await herald.stop()
    # Then the tool lists it as malformed_json and shows it as raw text
    _, output, _ = await cli(amqp_url, database_path, "replay", "list", "--format", "json")
    (listed,) = json.loads(output)["messages"]
    assert (listed["id"], listed["reason"]) == ("deep-2", "malformed_json")
    _, shown, _ = await cli(amqp_url, database_path, "replay", "show", "deep-2")
    assert '{"a":{"a":' in shown
    assert await broker.queue_depth(DEAD_LETTER_QUEUE) == 1


# Whose headers are trusted ------------------------------------------------------------------


async def test_requeue_trusts_only_what_herald_or_the_broker_wrote(
    amqp_url: str, broker: Broker, audit: AuditLog
) -> None:
    # Given an event put on portal.events with the orders key and a users type (Herald rejected
    # it: routing key differs from type), once as the consumer writes it now and once as an
    # older version wrote it, keeping the publisher's forged replay header
    misrouted = event("users.user.invited")
    legacy = event("users.user.invited")
    forged = {"x-herald-original-routing-key": "users.user.invited"}
    await herald_dead_letter(
        broker, misrouted, "schema_violation", routing_key="orders.quote.created"
    )
    await herald_dead_letter(
        broker,
        legacy,
        "schema_violation",
        routing_key="orders.quote.created",
        original_queue=None,
        extra_headers=forged,
    )
    # and a valid orders event that RabbitMQ dead-lettered past herald.orders' delivery limit,
    # whose publisher set Herald's reject headers to point elsewhere
    limited = event("orders.quote.created")
    await broker_dead_letter(
        broker,
        limited,
        headers={
            **forged,
            "x-reject-reason": "schema_violation",
            "x-original-routing-key": "users.user.invited",
            "x-original-queue": queue_name("users"),
        },
    )
    # and one RabbitMQ dead-lettered from a queue that is not Herald's
    foreign = event("orders.quote.created")
    await broker_dead_letter(broker, foreign, foreign_queue=True)

    # When the SRE requeues everything without --force
    report = await requeue(amqp_url, Filters(), audit, actor="sre-test")
    # Then the forged keys are re-validated as what they were, and nothing reached herald.users
    assert await broker.queue_depth(queue_name("users")) == 0
    actions = {action["id"]: action for action in report.actions}
    for kept in (misrouted["id"], legacy["id"]):
        assert (actions[kept]["verdict"], actions[kept]["action"]) == ("invalid", "keep")
        assert "routing key" in actions[kept]["detail"]
    assert actions[limited["id"]]["action"] == "requeue"
    assert (actions[limited["id"]]["type"], actions[misrouted["id"]]["type"]) == (
        "orders.quote.created",
        "orders.quote.created",
    )
    assert actions[limited["id"]]["queue"] == "herald.orders"
    assert actions[foreign["id"]]["action"] == "keep_unroutable"
    assert "not one of Herald's" in actions[foreign["id"]]["note"]
    assert await broker.queue_depth(queue_name("users")) == 0
    copy = await get_one(await broker.channel.get_queue(queue_name("orders")), no_ack=True)
    assert copy.message_id == limited["id"]
    assert (copy.headers or {})["x-herald-original-routing-key"] == "orders.quote.created"

    # When --force: the misrouted go back to the queue they were consumed from, never to the
    # one a header names; the foreign one stays, saying why
    forced = await requeue(amqp_url, Filters(), audit, actor="sre-test", force=True)
    assert (forced.requeued, forced.forced, forced.unroutable) == (2, 2, 1)
    assert await broker.queue_depth(queue_name("users")) == 0
    queue = await broker.channel.get_queue(queue_name("orders"))
    for expected in (misrouted["id"], legacy["id"]):
        copy = await get_one(queue, no_ack=True)
        assert copy.message_id == expected
        assert (copy.headers or {})["x-herald-original-routing-key"] == "orders.quote.created"
    assert await dead_letter_ids(broker) == [foreign["id"]]
    (entry,) = (await list_dead_letters(amqp_url, Filters())).entries
    assert (entry.reason, entry.event_type) == ("delivery_limit", "orders.quote.created")
    assert entry.queue is not None and entry.queue.startswith("herald-test-limit-")


async def test_a_forged_replay_header_through_herald_stays_dead(
    amqp_url: str,
    database_path: str,
    smtp_server: SmtpServer,
    tmp_path: Path,
    broker: Broker,
) -> None:
    # Given Herald running, and a publisher putting a users event on portal.events with an
    # orders key and Herald's replay header naming the users type
    document = event("users.user.invited")
    herald = await build_service(service_settings(amqp_url, smtp_server, tmp_path))
    await herald.start()
    try:
        await broker.publish(
            document,
            routing_key="orders.quote.created",
            headers={
                "x-herald-original-routing-key": "users.user.invited",
                "x-original-queue": queue_name("users"),
                "x-reject-reason": "forged",
                "x-death": [{"queue": queue_name("users"), "reason": "delivery_limit"}],
            },
        )
        # Herald dead-letters it: the AMQP routing key differs from the type
        await wait_for_metric(herald, "herald_events_dead_lettered_total", 1)
    finally:
        await herald.stop()
    # When the SRE requeues it without --force
    _, output, _ = await cli(amqp_url, database_path, "replay", "requeue", "--format", "json")
    report = json.loads(output)
    # Then it stays: re-validated with the key Herald checked, it still fails
    assert await broker.queue_depth(queue_name("users")) == 0
    assert await broker.queue_depth(DEAD_LETTER_QUEUE) == 1
    (action,) = report["messages"]
    assert (action["type"], action["verdict"], action["action"]) == (
        "orders.quote.created",
        "invalid",
        "keep",
    )
    assert action["queue"] == "herald.orders"
    # And Herald's copy carries only what Herald wrote (needs the consumer's header clean-up:
    # publisher-supplied x-herald-*, x-original-*, x-reject-* and x-death removed)
    copy = await broker.dead_letter(document["id"])
    headers = copy.headers or {}
    assert headers["x-original-queue"] == "herald.orders"
    assert headers["x-original-routing-key"] == "orders.quote.created"
    assert headers["x-reject-reason"] == "schema_violation"
    assert "x-herald-original-routing-key" not in headers
    assert "x-death" not in headers


# Reading only what is needed ----------------------------------------------------------------


async def test_list_with_a_limit_reads_only_what_it_needs(
    amqp_url: str,
    database_path: str,
    broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given 300 dead letters, three of them users events at positions 10, 20 and 250
    documents = [event("orders.quote.created") for _ in range(300)]
    for position in (10, 20, 250):
        documents[position - 1] = event("users.user.invited")
    for document in documents:
        await herald_dead_letter(broker, document, "schema_violation")
    order = [document["id"] for document in documents]
    # Reading the whole queue leaves it in order (more than 32 messages returned at once are
    # shuffled by RabbitMQ 3.10)
    for _ in range(3):
        assert await dead_letter_ids(broker) == order
    users = [document["id"] for document in documents if document["type"].startswith("users.")]
    gets = 0
    original_get = aio_pika.Queue.get

    async def counted_get(self: aio_pika.Queue, *args: Any, **kwargs: Any) -> Any:
        nonlocal gets
        gets += 1
        return await original_get(self, *args, **kwargs)

    monkeypatch.setattr(aio_pika.Queue, "get", counted_get)
    # When the list asks for 5, with no other filter: it takes 5
    listing = await list_dead_letters(amqp_url, Filters(), limit=5)
    assert [entry.event_id for entry in listing.entries] == order[:5]
    assert (listing.queue_total, listing.read, listing.complete) == (300, 5, False)
    assert gets == 5
    # With a filter it stops at the second match
    monkeypatch.undo()
    current = await dead_letter_ids(broker)
    monkeypatch.setattr(aio_pika.Queue, "get", counted_get)
    gets = 0
    second = current.index(users[1]) + 1
    found = await list_dead_letters(amqp_url, Filters(type_glob="users.*"), limit=2)
    assert [entry.event_id for entry in found.entries] == users[:2]
    assert [entry.position for entry in found.entries] == [current.index(users[0]) + 1, second]
    assert gets == found.read == second
    monkeypatch.undo()
    # The command says what its summary covers; nothing was consumed, and what was read went
    # back in order (RabbitMQ 3.x puts returned messages behind the rest of a quorum queue)
    current = await dead_letter_ids(broker)
    _, output, _ = await cli(amqp_url, database_path, "replay", "list", "--limit", "5")
    assert "first 5 of 300 messages" in output
    assert await dead_letter_ids(broker) in (current, current[5:] + current[:5])
    _, output, _ = await cli(
        amqp_url, database_path, "replay", "list", "--limit", "2", "--format", "json"
    )
    listing_json = json.loads(output)
    assert (listing_json["queue_total"], listing_json["read"]) == (300, 2)
    assert listing_json["complete"] is False
    assert sorted(map(str, await dead_letter_ids(broker))) == sorted(order)
    assert await broker.queue_depth(DEAD_LETTER_QUEUE) == 300
