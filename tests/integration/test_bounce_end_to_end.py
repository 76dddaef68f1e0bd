"""The loop after the 250, end to end on the real broker, a SQLite ledger and an SMTP server:
Herald mails an order with a VERP envelope sender (the From header untouched); a DSN for one
recipient sent over SMTP to the bounce listener marks that delivery `bounced` (as
`herald deliveries find` shows) and suppresses the address; the next event records `blocked`
for it while the other recipient is mailed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from email.utils import parseaddr
from pathlib import Path

import aiosmtplib
import pytest

from herald.senders.return_path import ReturnPath
from herald.service.app import Service, build_service
from tests.conftest import SmtpServer
from tests.feedback_mail import dsn
from tests.integration.conftest import Broker, metric, service_settings
from tests.integration.test_suppressions_end_to_end import (
    GONE,
    KEPT,
    deliveries,
    herald_cli,
    publish_and_settle,
)

pytestmark = pytest.mark.integration

DOMAIN = "bounces.operator.example"
SECRET = "end-to-end-bounce-secret"
RETURN_PATH = ReturnPath(DOMAIN, SECRET.encode())


@pytest.fixture
async def bouncing_service(
    amqp_url: str, smtp_server: SmtpServer, tmp_path: Path, broker: Broker
) -> AsyncIterator[Service]:
    settings = service_settings(
        amqp_url,
        smtp_server,
        tmp_path,
        bounce_domain=DOMAIN,
        bounce_secret=SECRET,
        bounce_smtp_host="127.0.0.1",
        bounce_smtp_port=0,
    )
    herald = await build_service(settings)
    await herald.start()
    yield herald
    await herald.stop()


async def test_a_dsn_after_the_250_bounces_the_delivery_and_blocks_the_address(
    bouncing_service: Service, broker: Broker, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    service = bouncing_service
    assert service.bounce_listener is not None
    database_url = f"sqlite:///{tmp_path}/herald.db"

    # Given an order mailed to both recipients, each with its own VERP envelope sender
    first = await publish_and_settle(service, broker)
    records = await deliveries(service, first)
    assert (records[GONE].status, records[KEPT].status) == ("sent", "sent")
    (mail,) = [item for item in smtp_server.received if GONE in item.recipients]
    verp = RETURN_PATH.address(records[GONE].message_id.strip("<>")[:20])
    assert mail.envelope_from == verp
    assert parseaddr(str(mail.message["From"]))[1] == "notifications@operator.example"
    assert DOMAIN not in str(mail.message["From"]) + str(mail.message["Reply-To"])

    # When the recipient's MTA later returns a DSN for it to the bounce listener
    async with aiosmtplib.SMTP(
        hostname="127.0.0.1", port=service.bounce_listener.port, timeout=10
    ) as client:
        await client.ehlo()
        await client.mail("")
        await client.rcpt(verp)
        reply = await client.data(dsn(verp))
    assert reply.code == 250

    # Then the ledger reads "sent, then bounced" for that delivery only, and the address is
    # suppressed as a hard bounce
    code, stdout, stderr = await herald_cli(
        database_url, "deliveries", "find", "--event-id", first["id"], "--format", "json"
    )
    assert code == 0, stderr
    found = {row["recipient"]: row for row in json.loads(stdout)}
    assert (found[GONE]["status"], found[KEPT]["status"]) == ("bounced", "sent")
    assert "then bounced (dsn): 5.1.1" in found[GONE]["detail"]
    assert metric(service, "herald_feedback_reports_total", source="dsn", outcome="recorded") == 1
    code, stdout, stderr = await herald_cli(
        database_url, "suppressions", "list", "--address", GONE, "--format", "json"
    )
    assert code == 0, stderr
    (suppression,) = json.loads(stdout)
    assert (suppression["reason"], suppression["source"]) == ("hard_bounce", "dsn")

    # And the next event records `blocked` for it while the other recipient is mailed
    mailed_before = len(smtp_server.received)
    second = await publish_and_settle(service, broker)
    records = await deliveries(service, second)
    assert (records[GONE].status, records[KEPT].status) == ("blocked", "sent")
    later = smtp_server.received[mailed_before:]
    assert GONE not in {r for item in later for r in item.recipients}
    assert KEPT in {r for item in later for r in item.recipients}
