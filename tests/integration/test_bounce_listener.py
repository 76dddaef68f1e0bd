"""The bounce listener (service/bounce_smtp.py) in this process, on a real ledger (SQLite and
PostgreSQL), spoken to over SMTP with aiosmtplib as an MTA would: a DSN bounces the delivery its
VERP token names, an ARF complaint marks it complained, a repeat changes nothing, and every
refusal (forged token, foreign domain, not a report, oversized, unknown delivery) is a 5xx
that changes nothing. The 250 comes only after the ledger write."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiosmtplib
import pytest

from herald.feedback.ports import FeedbackLedger
from herald.ledger.feedback import FeedbackOutcome, FeedbackReport
from herald.ledger.health import LedgerUnavailable
from herald.ledger.store import SqlLedger
from herald.ledger.suppressions import SuppressionList
from herald.senders.return_path import ReturnPath
from herald.service.bounce_smtp import (
    MAX_RECIPIENTS,
    BounceListener,
    ListenerOptions,
    start_bounce_listener,
)
from herald.service.metrics import Metrics
from tests.feedback_mail import arf, dsn, plain_mail, sample
from tests.support import record_sent, sample_sum

pytestmark = pytest.mark.integration

DOMAIN = "bounces.operator.example"
KEY = "0123456789abcdef0123" + "c" * 44
RECIPIENT = "Mia@Northwind.example"
RETURN_PATH = ReturnPath(DOMAIN, b"listener-test-secret")
VERP = RETURN_PATH.address(KEY)
FIXED = f"fbl@{DOMAIN}"
MAX_BYTES = 20_000


@dataclass
class Rig:
    listener: BounceListener
    metrics: Metrics

    async def send(self, raw: bytes, *recipients: str) -> tuple[int, str]:
        """One SMTP transaction from the null sender, as an MTA mails a report; the reply to
        DATA (or the refusal that came first) as (code, text)."""
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=self.listener.port, timeout=10)
        async with client:
            await client.ehlo()
            await client.mail("")
            for recipient in recipients or (VERP,):
                reply = await client.rcpt(recipient)  # raises on a refusal
                assert reply.code == 250
            reply = await client.data(raw)
            return reply.code, reply.message

    def counted(self, **labels: str) -> float:
        return sample_sum(self.metrics.registry, "herald_feedback_reports_total", **labels)


async def listening(ledger: FeedbackLedger) -> tuple[BounceListener, Metrics]:
    metrics = Metrics()
    listener = await start_bounce_listener(
        RETURN_PATH, ledger, metrics, ListenerOptions("127.0.0.1", 0, MAX_BYTES)
    )
    return listener, metrics


@pytest.fixture
async def rig(ledger: SqlLedger) -> AsyncIterator[Rig]:
    await record_sent(ledger, KEY, RECIPIENT)
    listener, metrics = await listening(ledger)
    yield Rig(listener, metrics)
    await listener.stop()


async def status(ledger: SqlLedger) -> str:
    (record,) = await ledger.deliveries_of_event("/orders", "evt-1")
    return record.status


async def suppressions(ledger: SqlLedger) -> list[tuple[str, str, str]]:
    return [
        (entry.address, entry.reason, entry.source)
        for entry in await SuppressionList(ledger).entries()
    ]


async def test_a_dsn_suppresses_the_delivery_recipient_and_marks_the_row_bounced(
    rig: Rig, ledger: SqlLedger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="herald.service.bounce_smtp")
    # The DSN names another address in its body: only the delivery's own recipient counts.
    code, _ = await rig.send(dsn(VERP, recipient="someone.else@example.org"))
    assert code == 250
    assert await status(ledger) == "bounced"
    assert await suppressions(ledger) == [("Mia@northwind.example", "hard_bounce", "dsn")]
    assert rig.counted(source="dsn", outcome="recorded") == 1
    logged = [record for record in caplog.records if record.name.endswith("bounce_smtp")]
    assert logged and all("@" not in str(vars(record)) for record in logged)


async def test_a_postfix_dsn(rig: Rig, ledger: SqlLedger) -> None:
    code, _ = await rig.send(sample("postfix_dsn.eml", VERP))
    assert code == 250
    assert await status(ledger) == "bounced"


async def test_an_arf_complaint_to_the_feedback_address_marks_the_row_complained(
    rig: Rig, ledger: SqlLedger
) -> None:
    code, _ = await rig.send(sample("yahoo_arf.eml", VERP), FIXED)
    assert code == 250
    assert await status(ledger) == "complained"
    assert await suppressions(ledger) == [("Mia@northwind.example", "complaint", "arf")]
    assert rig.counted(source="arf", outcome="recorded") == 1


async def test_the_same_report_twice_is_recorded_once(rig: Rig, ledger: SqlLedger) -> None:
    assert (await rig.send(dsn(VERP)))[0] == 250
    assert (await rig.send(dsn(VERP)))[0] == 250
    assert len(await suppressions(ledger)) == 1
    assert [entry.action for entry in await SuppressionList(ledger).audit()] == ["add"]
    assert rig.counted(source="dsn", outcome="recorded") == 1
    assert rig.counted(source="dsn", outcome="repeat") == 1


async def test_a_delay_notification_is_taken_and_changes_nothing(
    rig: Rig, ledger: SqlLedger
) -> None:
    code, _ = await rig.send(dsn(VERP, action="delayed", status="4.4.1"))
    assert code == 250
    assert (await status(ledger), await suppressions(ledger)) == ("sent", [])
    assert rig.counted(source="dsn", outcome="ignored", reason="not_failed") == 1


async def test_refused_at_rcpt_forged_token_and_foreign_domain(rig: Rig, ledger: SqlLedger) -> None:
    forged = ReturnPath(DOMAIN, b"guessed").address(KEY)
    for recipient, expected in (
        (forged, "5.1.1"),
        (f"bounces+{'0' * 32}@{DOMAIN}", "5.1.1"),
        ("postmaster@elsewhere.example", "5.7.1"),
        (f"bounces+x@{DOMAIN}.evil.example", "5.7.1"),
    ):
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await rig.send(dsn(recipient), recipient)
        assert refused.value.code == 550
        assert refused.value.message.startswith(expected)
    assert (await status(ledger), await suppressions(ledger)) == ("sent", [])
    assert rig.counted(source="smtp", outcome="rejected", reason="bad_token") == 2
    assert rig.counted(source="smtp", outcome="rejected", reason="relay_denied") == 2


@pytest.mark.parametrize(
    ("raw", "recipient", "expected", "labels"),
    [
        (plain_mail(VERP), VERP, "5.6.0", {"source": "smtp", "reason": "not_a_report"}),
        # A DSN to a fixed address: only an envelope token names the delivery of a DSN.
        (dsn(VERP, to=FIXED), FIXED, "5.1.1", {"source": "dsn", "reason": "no_token"}),
        (arf(FIXED), FIXED, "5.1.1", {"source": "arf", "reason": "no_token"}),
        (
            dsn(RETURN_PATH.address("9" * 64)),
            RETURN_PATH.address("9" * 64),
            "5.1.1",
            {"source": "dsn", "reason": "unknown_delivery"},
        ),
    ],
    ids=["not_a_report", "dsn_without_token", "arf_without_token", "unknown_delivery"],
)
async def test_refused_after_data_changes_nothing(
    rig: Rig,
    ledger: SqlLedger,
    raw: bytes,
    recipient: str,
    expected: str,
    labels: dict[str, str],
) -> None:
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await rig.send(raw, recipient)
    assert (refused.value.code, refused.value.message[:5]) == (550, expected)
    assert (await status(ledger), await suppressions(ledger)) == ("sent", [])
    assert rig.counted(outcome="rejected", **labels) == 1


async def test_an_oversized_message_is_refused(rig: Rig, ledger: SqlLedger) -> None:
    big = dsn(VERP).replace(b"\r\n\r\n", b"\r\n\r\n" + (b"y" * 70 + b"\r\n") * 400, 1)
    assert len(big) > MAX_BYTES
    with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
        await rig.send(big)  # refused at DATA, after the whole message was read
    assert refused.value.code == 552
    # aiosmtplib.send announces the size: refused at MAIL FROM before any data.
    with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
        await aiosmtplib.send(
            big,
            sender="postmaster@relay.example",
            recipients=[VERP],
            hostname="127.0.0.1",
            port=rig.listener.port,
        )
    assert refused.value.code == 552
    assert (await status(ledger), await suppressions(ledger)) == ("sent", [])
    assert rig.counted(source="smtp", outcome="rejected", reason="too_large") == 2


async def test_recipients_per_message_are_limited(rig: Rig) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=rig.listener.port, timeout=10)
    async with client:
        await client.ehlo()
        await client.mail("")
        for _ in range(MAX_RECIPIENTS):
            assert (await client.rcpt(FIXED)).code == 250
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await client.rcpt(FIXED)
        assert refused.value.code == 452


class _SlowLedger:
    """Holds each write until released, or fails it as the real ledger does when down."""

    def __init__(self, ledger: SqlLedger, down: bool = False) -> None:
        self.ledger = ledger
        self.down = down
        self.release = asyncio.Event()

    async def record_feedback(self, report: FeedbackReport) -> FeedbackOutcome | None:
        if self.down:
            raise LedgerUnavailable("ledger: OperationalError")
        await self.release.wait()
        return await self.ledger.record_feedback(report)


async def test_the_250_comes_only_after_the_ledger_write(rig: Rig, ledger: SqlLedger) -> None:
    slow = _SlowLedger(ledger)
    listener, _ = await listening(slow)
    try:
        sending = asyncio.create_task(Rig(listener, rig.metrics).send(dsn(VERP)))
        await asyncio.sleep(0.5)
        assert not sending.done()  # no reply while the ledger has not written
        assert await status(ledger) == "sent"
        slow.release.set()
        assert (await sending)[0] == 250
        assert await status(ledger) == "bounced"
    finally:
        await listener.stop()


async def test_ledger_unavailable_is_answered_451_so_the_mta_retries(
    rig: Rig, ledger: SqlLedger
) -> None:
    down = _SlowLedger(ledger, down=True)
    listener, metrics = await listening(down)
    try:
        with pytest.raises(aiosmtplib.SMTPDataError) as deferred:
            await Rig(listener, metrics).send(dsn(VERP))
        assert (deferred.value.code, deferred.value.message[:5]) == (451, "4.3.0")
        assert Rig(listener, metrics).counted(reason="ledger_unavailable") == 1
    finally:
        await listener.stop()
    # The MTA's retry, once the ledger is back, is recorded.
    assert (await rig.send(dsn(VERP)))[0] == 250
    assert await status(ledger) == "bounced"


async def test_sessions_beyond_the_limit_are_told_to_come_back_later(ledger: SqlLedger) -> None:
    metrics = Metrics()
    listener = await start_bounce_listener(
        RETURN_PATH, ledger, metrics, ListenerOptions("127.0.0.1", 0, MAX_BYTES, max_sessions=2)
    )
    clients = [aiosmtplib.SMTP(hostname="127.0.0.1", port=listener.port) for _ in range(2)]
    try:
        for client in clients:
            await client.connect()
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        assert (await reader.readline()).startswith(b"421 4.7.0")
        assert await reader.read() == b""  # closed
        writer.close()
        labels = {"source": "smtp", "outcome": "rejected", "reason": "too_many_sessions"}
        assert sample_sum(metrics.registry, "herald_feedback_reports_total", **labels) == 1
        await clients[0].quit()
        await asyncio.sleep(0.05)
        again = aiosmtplib.SMTP(hostname="127.0.0.1", port=listener.port)
        await again.connect()  # a freed place is taken again
        await again.quit()
    finally:
        for client in clients:
            if client.is_connected:
                client.close()
        await listener.stop()
