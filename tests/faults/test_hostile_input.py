"""Rows 28-33 of the fault matrix end to end, against a `herald run` process: deeply nested JSON,
header injection, recipient smuggling, template injection and an output bomb, published among
good events. Checked at the SMTP server: the good ones arrive once, nothing reaches an
injected address, and every hostile one is dead-lettered with a reason."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from herald.consumers.topology import EVENTS_EXCHANGE
from tests.faults.harness import (
    Mail,
    Mailbox,
    account,
    assert_no_loss,
    dead_letters,
    poll,
    publish,
    quote_events,
    run_id,
    sqlite_url,
    start_herald,
    stop_herald,
    wait_for_mail,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def publish_raw(url: str, bodies: dict[str, bytes]) -> None:
    """Bodies as an upstream bug or an attacker would publish them, keyed by message id."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
        for message_id, body in bodies.items():
            await exchange.publish(
                aio_pika.Message(
                    body,
                    content_type="application/cloudevents+json",
                    message_id=message_id,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key="orders.quote.created",
                timeout=10,
            )


def text_of(mail: Mail) -> str:
    message = message_from_string(mail.content, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return "".join(
        str(part.get_content()) for part in message.walk() if part.get_content_maintype() == "text"
    )


async def test_hostile_events_among_good_ones(
    vhost_url: str,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    report: Callable[..., None],
) -> None:
    run = run_id()
    good = quote_events(12, run)
    template_injection = good[-1]
    template_injection["data"]["quote"]["name"] = "{{7*7}} {{''.__class__}} {% print 1 %}"
    evil = f"evil.{run}@attacker.example"

    def variant(tag: str, change: Callable[[dict[str, Any]], None]) -> bytes:
        document = copy.deepcopy(good[0])
        document["id"] = f"{run}-{tag}"
        document["data"]["quote"]["recipient"]["email"] = f"{tag}.{run}@load.example"
        change(document)
        return json.dumps(document).encode()

    def recipient(field: str, value: str) -> Callable[[dict[str, Any]], None]:
        return lambda document: document["data"]["quote"]["recipient"].__setitem__(field, value)

    # Row 29: a line break or an encoded newline in a name is flattened (schemas.scalars
    # single_line) and cleaned from headers: the email goes to its recipient, with no header
    # or RCPT added. Sent like good events.
    neutralised = {
        f"{run}-crlf": variant("crlf", recipient("name", f"Mia\r\nBcc: {evil}")),
        f"{run}-encoded": variant("encoded", recipient("name", f"=?UTF-8?Q?=0A?=Bcc: {evil}")),
    }
    hostile = {
        f"{run}-nested": b"[" * 100_000,  # row 28
        f"{run}-smuggle": variant(
            "smuggle", recipient("email", f"smuggle.{run}@load.example, {evil}")
        ),  # row 30
        f"{run}-bomb": variant(
            "bomb", lambda document: document["data"]["quote"].__setitem__("name", "x" * 100_000)
        ),  # row 33, output bomb
        f"{run}-missing": variant(
            "missing", lambda document: document["data"]["quote"].pop("name")
        ),  # row 33, a missing required field
    }
    mailbox = Mailbox(unused_tcp_port_factory())
    mailbox.start()
    herald = await start_herald(
        vhost_url, mailbox, sqlite_url(tmp_path), tmp_path, unused_tcp_port_factory()
    )
    try:
        # Given hostile events published between good ones
        await publish(vhost_url, good[:6])
        await publish_raw(vhost_url, hostile | neutralised)
        await publish(vhost_url, good[6:])
        # When Herald has handled them all
        await wait_for_mail(mailbox, len(good) + len(neutralised), timeout=60)

        parked: list[dict[str, Any]] = []

        async def collect() -> bool:
            parked.extend(await dead_letters(vhost_url))
            return len(parked) >= len(hostile)

        await poll(collect, 30, interval=0.5)
        # Then the good ones arrived once, nothing went to an injected address, every hostile
        # event is dead-lettered with a reason, and the template text stayed literal
        flattened = [json.loads(body) for body in neutralised.values()]
        counts = account(good + flattened, mailbox)
        reasons = {item["message_id"]: item["headers"].get("x-reject-reason") for item in parked}
        address = template_injection["data"]["quote"]["recipient"]["email"]
        injected = [mail for mail in mailbox.received if mail.recipient == address]
        report(
            "hostile input among good events (rows 28-33)",
            counts,
            "dead_lettered="
            + ",".join(f"{key.split('-', 1)[1]}:{value}" for key, value in sorted(reasons.items())),
        )
        assert_no_loss(counts)
        assert all(evil not in mail.recipient for mail in mailbox.received)
        for mail in mailbox.received:
            message = message_from_string(mail.content, policy=policy.default)
            to = [address.addr_spec for address in message["To"].addresses]
            assert message["Bcc"] is None and to == [mail.recipient], mail.content[:500]
        assert set(reasons) == set(hostile), reasons
        assert all(reasons.values()), reasons
        assert len(injected) == 1
        body = text_of(injected[0])
        assert "{{7*7}}" in body and "<class" not in body
        assert herald.process is not None and herald.process.returncode is None, "no crash"
    finally:
        await stop_herald(herald)
        mailbox.stop()
