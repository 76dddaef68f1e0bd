"""The RabbitMQ definitions file operators and the compose stack import (issue 9) and the
publish helper, against the local broker.

`deploy/rabbitmq/definitions.json` is imported into a scratch vhost with `rabbitmqctl
import_definitions`; what the broker then holds must be exactly what Herald's own `declare`
creates in another scratch vhost, and exactly EVENTS.md section 2.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from herald.consumers.topology import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    DOMAINS,
    EVENTS_EXCHANGE,
    declare,
    definitions,
    queue_name,
)
from tests.conftest import _rabbitmqctl

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS_FILE = ROOT / "deploy/rabbitmq/definitions.json"
HERALD = str(ROOT / ".venv/bin/herald")


def _listing(vhost: str, what: str, *columns: str) -> list[dict[str, Any]]:
    text = _rabbitmqctl(what, "-q", "-p", vhost, *columns, "--formatter", "json")
    return list(json.loads(text))


def snapshot(vhost: str) -> dict[str, Any]:
    """The vhost's exchanges, queues and bindings, with arguments as key -> value (their AMQP
    field types differ by client and are not part of the contract)."""

    def arguments(row: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, _type, value in row["arguments"]}

    exchanges = {
        row["name"]: (row["type"], row["durable"], row["auto_delete"], arguments(row))
        for row in _listing(
            vhost, "list_exchanges", "name", "type", "durable", "auto_delete", "arguments"
        )
        if not row["name"].startswith("amq.") and row["name"] != ""
    }
    queues = {
        row["name"]: (row["type"], row["durable"], row["auto_delete"], arguments(row))
        for row in _listing(
            vhost, "list_queues", "name", "type", "durable", "auto_delete", "arguments"
        )
    }
    bindings = sorted(
        (row["source_name"], row["destination_name"], row["routing_key"])
        for row in _listing(
            vhost, "list_bindings", "source_name", "destination_name", "routing_key"
        )
        if row["source_name"] != ""  # the default exchange binds every queue implicitly
    )
    return {"exchanges": exchanges, "queues": queues, "bindings": bindings}


def import_definitions(vhost: str) -> None:
    document = json.loads(DEFINITIONS_FILE.read_text("utf-8"))
    for kind in ("exchanges", "queues", "bindings"):
        for item in document[kind]:
            assert item["vhost"] == "/", item
            item["vhost"] = vhost
    # On standard input: Debian's rabbitmqctl runs as the rabbitmq user, which cannot read a
    # test's private temporary directory.
    _rabbitmqctl("import_definitions", "--format", "json", stdin=json.dumps(document).encode())
    # The import is asynchronous: wait until every queue of the file is there.
    expected = len(document["queues"])
    deadline = time.monotonic() + 30
    while len(_listing(vhost, "list_queues", "name")) < expected:
        assert time.monotonic() < deadline, "the definitions import did not finish"
        time.sleep(0.2)


def test_the_committed_definitions_file_is_the_generated_one() -> None:
    """`herald topology definitions -o deploy/rabbitmq/definitions.json` regenerates it."""
    assert json.loads(DEFINITIONS_FILE.read_text("utf-8")) == definitions()


async def test_imported_definitions_equal_the_declared_topology_and_the_contract(
    scratch_vhosts: Callable[[str], str],
) -> None:
    imported, declared = scratch_vhosts("herald-scratch"), scratch_vhosts("herald-scratch")
    import_definitions(imported)
    connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:5672/{declared}")
    async with connection:
        await declare(await connection.channel())
    from_file, from_code = snapshot(imported), snapshot(declared)

    assert from_file == from_code
    # EVENTS.md section 2, item by item.
    exchanges, queues = from_file["exchanges"], from_file["queues"]
    assert exchanges[EVENTS_EXCHANGE] == ("topic", True, False, {})
    assert exchanges[DEAD_LETTER_EXCHANGE] == ("fanout", True, False, {})
    assert set(exchanges) == {EVENTS_EXCHANGE, DEAD_LETTER_EXCHANGE}
    assert queues[DEAD_LETTER_QUEUE] == ("quorum", True, False, {"x-queue-type": "quorum"})
    for domain in DOMAINS:
        assert queues[queue_name(domain)] == (
            "quorum",
            True,
            False,
            {
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": "herald.dlx",
                "x-delivery-limit": 50,
            },
        )
    expected_bindings = {(DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, "")} | {
        (EVENTS_EXCHANGE, queue_name(domain), f"{domain}.#") for domain in DOMAINS
    }
    assert set(from_file["bindings"]) == expected_bindings
    # The rest are the retry queues, each expiring back into its domain queue.
    for name, (kind, durable, _auto_delete, arguments) in queues.items():
        if ".retry." in name:
            domain_queue = name.split(".retry.")[0]
            assert (kind, durable) == ("quorum", True)
            assert arguments["x-dead-letter-routing-key"] == domain_queue
            assert arguments["x-dead-letter-strategy"] == "at-least-once"
            assert arguments["x-message-ttl"] == int(name.rsplit(".", 1)[1].removesuffix("ms"))


async def _run_herald(*args: str, amqp_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HERALD_AMQP_URL": amqp_url}
    return await asyncio.to_thread(
        subprocess.run, [HERALD, *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_publish_example_sends_a_fresh_contract_event_each_time(
    scratch_vhosts: Callable[[str], str],
) -> None:
    scratch_vhost = scratch_vhosts("herald-scratch")
    url = f"amqp://guest:guest@127.0.0.1:5672/{scratch_vhost}"
    import_definitions(scratch_vhost)
    done = await _run_herald(
        "publish-example", "orders.order.placed", "--copies", "2", amqp_url=url
    )
    assert done.returncode == 0, done.stderr
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name("orders"), passive=True)
        messages = []
        for _ in range(2):
            message = await queue.get(timeout=5)
            assert message is not None
            messages.append(message)
            await message.ack()
    ids = set()
    for message in messages:
        event = json.loads(message.body)
        assert event["type"] == "orders.order.placed"
        assert message.message_id == event["id"]
        assert message.content_type == "application/cloudevents+json"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.routing_key == "orders.order.placed"
        ids.add(event["id"])
    assert len(ids) == 2  # fresh ids: Herald would not drop the second as a duplicate
    assert done.stdout.count("published orders.order.placed") == 2


async def test_publish_example_fails_clearly_when_no_queue_is_bound(
    scratch_vhosts: Callable[[str], str],
) -> None:
    url = f"amqp://guest:guest@127.0.0.1:5672/{scratch_vhosts('herald-scratch')}"
    done = await _run_herald("publish-example", "orders.order.placed", amqp_url=url)
    assert done.returncode == 2
    assert "herald topology declare" in done.stderr
    unknown = await _run_herald("publish-example", "orders.no.such", amqp_url=url)
    assert unknown.returncode == 2
    assert "no example event" in unknown.stderr
