"""Provider webhooks end to end: the public app on a real port, the real ledger (SQLite and
PostgreSQL), and a local HTTPS server standing in for `sns.us-east-1.amazonaws.com` (a
certificate for that name from the tests' own CA, injected through `feedback.ses.ca_file`; the
host name reaches it through the fetcher's resolver), so certificate fetches and subscription
confirmations are real TLS requests.

Signed SES (SNS) and SendGrid reports are recorded once; tampered, replayed, unsigned and
oversized requests are answered 401/400 and change nothing; a subscription is confirmed only
for a configured topic; the public port and the metrics port serve nothing of each other."""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from herald.feedback.verdict import Item
from herald.ledger.feedback import FeedbackReport
from herald.ledger.health import LedgerUnavailable
from herald.ledger.store import SqlLedger
from herald.ledger.suppressions import SuppressionList
from herald.service.app import build_service
from herald.service.hooks import HookEndpoint
from herald.service.http import bound_port, build_app, start_http
from herald.service.metrics import Metrics
from herald.service.public_http import build_public_app, public_app_for
from herald.service.settings import ConfigFile, Settings
from tests.conftest import SmtpServer
from tests.integration.conftest import Broker, service_settings
from tests.pki import (
    SNS_HOST,
    TOPIC,
    Authority,
    SnsSigner,
    sendgrid_headers,
    sendgrid_key,
    sendgrid_public,
    sns_notification,
    sns_subscription,
    sns_timestamp,
    subscribe_url,
)
from tests.support import record_sent, sample_sum

pytestmark = pytest.mark.integration

KEY = "0123456789abcdef0123" + "f" * 44
MESSAGE_ID = f"<{KEY[:40]}@herald.example>"
OTHER_TOPIC = "arn:aws:sns:us-east-1:123456789012:not-herald"
SENDGRID_KEY = sendgrid_key()


class ToLocalServer(AbstractResolver):
    """Resolves the SNS host name to the local HTTPS server; nothing else resolves."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != SNS_HOST:
            raise OSError(f"no test address for {host}")
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": self.port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        pass


@dataclass
class FakeSns:
    """The local `sns.us-east-1.amazonaws.com`: the signing certificate and the SubscribeURL."""

    signer: SnsSigner
    requests: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        async def anything(request: web.Request) -> web.Response:
            self.requests.append(str(request.rel_url))
            if request.path.endswith(".pem"):
                return web.Response(body=self.signer.certificate_pem)
            if request.query.get("Action") == "ConfirmSubscription":
                return web.Response(text="<ConfirmSubscriptionResponse/>")
            return web.Response(status=404)

        app = web.Application()
        app.router.add_get("/{tail:.*}", anything)
        return app


@dataclass
class Hooks:
    base: str
    http: aiohttp.ClientSession
    ledger: SqlLedger
    metrics: Metrics
    sns: FakeSns

    async def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        data = io.BytesIO(body)  # aiohttp warns about large raw bytes
        async with self.http.post(self.base + path, data=data, headers=headers) as response:
            return response.status, await response.text()

    async def ses(self, document: dict[str, Any], version: str = "2") -> tuple[int, str]:
        signed = self.sns.signer.sign(document, version)
        return await self.post("/hooks/ses", json.dumps(signed).encode())

    async def sendgrid(self, events: list[dict[str, Any]], **kwargs: Any) -> tuple[int, str]:
        body = json.dumps(events).encode()
        return await self.post(
            "/hooks/sendgrid", body, sendgrid_headers(SENDGRID_KEY, body, **kwargs)
        )

    def counted(self, source: str, outcome: str, reason: str | None = None) -> float:
        labels = {"source": source, "outcome": outcome}
        if reason is not None:
            labels["reason"] = reason
        return sample_sum(self.metrics.registry, "herald_feedback_reports_total", **labels)

    async def suppressed(self) -> list[tuple[str, str, str]]:
        entries = await SuppressionList(self.ledger).entries()
        return [(entry.address, entry.reason, entry.source) for entry in entries]

    async def status(self) -> str:
        (record,) = await self.ledger.deliveries_of_event("/orders", "evt-1")
        return record.status


@pytest.fixture
async def hooks(ledger: SqlLedger, tmp_path: Path) -> AsyncIterator[Hooks]:
    authority = Authority()
    sns = FakeSns(SnsSigner(authority))
    sns_runner = web.AppRunner(sns.app(), access_log=None)
    await sns_runner.setup()
    site = web.TCPSite(
        sns_runner, "127.0.0.1", 0, ssl_context=authority.server_context(SNS_HOST, tmp_path)
    )
    await site.start()
    config = ConfigFile.model_validate(
        {"feedback": {"ses": {"topics": [TOPIC], "ca_file": str(authority.write_ca(tmp_path))}}}
    )
    settings = Settings(public_http_port=0, sendgrid_verification_key=sendgrid_public(SENDGRID_KEY))
    metrics = Metrics()
    app = public_app_for(
        settings, config, ledger, metrics, resolver=ToLocalServer(bound_port(sns_runner))
    )
    assert app is not None
    runner = await start_http(app, "127.0.0.1", 0)
    await record_sent(ledger, KEY, "mia@northwind.example", MESSAGE_ID, "250 2.0.0 queued")
    async with aiohttp.ClientSession() as http:
        yield Hooks(f"http://127.0.0.1:{bound_port(runner)}", http, ledger, metrics, sns)
    await runner.cleanup()
    await sns_runner.cleanup()


def ses_bounce(address: str = "mia@northwind.example", bounce_type: str = "Permanent") -> str:
    return json.dumps(
        {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": bounce_type,
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {
                        "emailAddress": address,
                        "status": "5.1.1",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                    }
                ],
            },
            "mail": {"messageId": "ses-own-id", "commonHeaders": {"messageId": MESSAGE_ID}},
        }
    )


def ses_complaint() -> str:
    return json.dumps(
        {
            "notificationType": "Complaint",
            "complaint": {
                "complainedRecipients": [{"emailAddress": "mia@northwind.example"}],
                "complaintFeedbackType": "abuse",
            },
            "mail": {"headers": [{"name": "Message-ID", "value": MESSAGE_ID}]},
        }
    )


@pytest.mark.parametrize("version", ["1", "2"])
async def test_a_permanent_ses_bounce_suppresses_and_marks_the_delivery(
    hooks: Hooks, version: str
) -> None:
    # Given a sent delivery; when SES reports its permanent bounce through SNS
    status, _ = await hooks.ses(sns_notification(ses_bounce()), version)
    # Then the address is suppressed and the delivery reads bounced
    assert status == 200
    assert await hooks.suppressed() == [("mia@northwind.example", "hard_bounce", "ses")]
    assert await hooks.status() == "bounced"
    assert hooks.counted("ses", "recorded", "bounce") == 1
    # The signing certificate came over TLS from the local "SNS", once.
    assert [r for r in hooks.sns.requests if r.endswith(".pem")] == [
        "/SimpleNotificationService-0123456789abcdef.pem"
    ]


async def test_an_ses_complaint_marks_the_delivery_complained(hooks: Hooks) -> None:
    status, _ = await hooks.ses(sns_notification(ses_complaint()))
    assert status == 200
    assert await hooks.suppressed() == [("mia@northwind.example", "complaint", "ses")]
    assert await hooks.status() == "complained"


async def test_the_same_notification_twice_adds_one_suppression(hooks: Hooks) -> None:
    document = sns_notification(ses_bounce())
    assert (await hooks.ses(document))[0] == 200
    assert (await hooks.ses(document))[0] == 200
    assert len(await hooks.suppressed()) == 1
    assert (hooks.counted("ses", "recorded"), hooks.counted("ses", "repeat")) == (1, 1)
    assert [entry.action for entry in await SuppressionList(hooks.ledger).audit()] == ["add"]


async def test_a_transient_bounce_is_acknowledged_and_ignored(hooks: Hooks) -> None:
    status, _ = await hooks.ses(sns_notification(ses_bounce(bounce_type="Transient")))
    assert status == 200
    assert await hooks.suppressed() == []
    assert await hooks.status() == "sent"
    assert hooks.counted("ses", "ignored", "not_permanent") == 1


async def assert_nothing_changed(hooks: Hooks) -> None:
    assert await hooks.suppressed() == []
    assert await hooks.status() == "sent"


async def test_tampered_replayed_unsigned_and_oversized_ses_requests_change_nothing(
    hooks: Hooks,
) -> None:
    signed = hooks.sns.signer.sign(sns_notification(ses_bounce()), "2")
    tampered = {**signed, "Message": ses_bounce("someone@else.example")}
    unsigned = {k: v for k, v in signed.items() if k != "Signature"}
    stale = sns_notification(
        ses_bounce(), Timestamp=sns_timestamp(datetime.now(UTC) - timedelta(minutes=10))
    )
    huge = sns_notification(ses_bounce() + " " * 300_000)
    cases = [
        (json.dumps(tampered).encode(), 401, "bad_signature"),
        (json.dumps(unsigned).encode(), 401, "unsigned"),
        (json.dumps(hooks.sns.signer.sign(stale, "2")).encode(), 401, "stale"),
        (json.dumps(hooks.sns.signer.sign(huge, "2")).encode(), 400, "too_large"),
        (b"{not json", 400, "malformed"),
    ]
    for body, status, reason in cases:
        assert await hooks.post("/hooks/ses", body) == (status, reason)
        assert hooks.counted("ses", "rejected", reason) == 1
    await assert_nothing_changed(hooks)


async def test_a_subscription_to_a_configured_topic_is_confirmed(hooks: Hooks) -> None:
    status, _ = await hooks.ses(sns_subscription(subscribe_url()))
    assert status == 200
    assert any("Action=ConfirmSubscription" in r for r in hooks.sns.requests)
    assert hooks.counted("ses", "ignored", "subscription_confirmed") == 1


async def test_a_subscription_to_another_topic_is_refused_without_any_fetch(hooks: Hooks) -> None:
    document = sns_subscription(subscribe_url(OTHER_TOPIC), topic=OTHER_TOPIC)
    assert await hooks.ses(document) == (401, "unknown_topic")
    assert hooks.sns.requests == []


async def test_a_sendgrid_bounce_and_spam_report_are_recorded_once(hooks: Hooks) -> None:
    events = [
        {
            "email": "mia@northwind.example",
            "event": "bounce",
            "type": "bounce",
            "status": "5.1.1",
            "reason": "550 5.1.1 unknown",
            "smtp-id": MESSAGE_ID,
        },
        {"email": "jonas@northwind.example", "event": "spamreport"},
        {"email": "ada@northwind.example", "event": "bounce", "type": "blocked", "status": "5.7.1"},
    ]
    assert (await hooks.sendgrid(events))[0] == 200
    assert (await hooks.sendgrid(events))[0] == 200  # SendGrid delivers again: no change
    assert sorted(await hooks.suppressed()) == [
        ("jonas@northwind.example", "complaint", "sendgrid"),
        ("mia@northwind.example", "hard_bounce", "sendgrid"),
    ]
    assert await hooks.status() == "bounced"
    assert hooks.counted("sendgrid", "recorded") == 2
    assert hooks.counted("sendgrid", "repeat") == 2
    assert hooks.counted("sendgrid", "ignored", "blocked") == 2


async def test_tampered_replayed_unsigned_and_oversized_sendgrid_requests_change_nothing(
    hooks: Hooks,
) -> None:
    events = [{"email": "mia@northwind.example", "event": "spamreport", "smtp-id": MESSAGE_ID}]
    body = json.dumps(events).encode()
    headers = sendgrid_headers(SENDGRID_KEY, body)
    tampered = body.replace(b"mia@", b"eve@")
    assert await hooks.post("/hooks/sendgrid", tampered, headers) == (401, "bad_signature")
    assert await hooks.post("/hooks/sendgrid", body) == (401, "unsigned")
    assert await hooks.sendgrid(events, timestamp=int(time.time()) - 600) == (401, "stale")
    huge = json.dumps(events * 30_000).encode()
    assert len(huge) > 1_048_576
    status, _ = await hooks.post("/hooks/sendgrid", huge, sendgrid_headers(SENDGRID_KEY, huge))
    assert status == 400
    await assert_nothing_changed(hooks)
    for reason in ("bad_signature", "unsigned", "stale", "too_large"):
        assert hooks.counted("sendgrid", "rejected", reason) == 1


async def test_the_public_port_serves_no_metrics_and_the_metrics_port_no_hooks(
    hooks: Hooks,
) -> None:
    async with hooks.http.get(hooks.base + "/metrics") as response:
        assert response.status == 404
    metrics_runner = await start_http(build_app(hooks.metrics, lambda: True), "127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{bound_port(metrics_runner)}"
        for path in ("/hooks/ses", "/hooks/sendgrid"):
            async with hooks.http.post(base + path, data=b"[]") as response:
                assert response.status in (404, 405)
    finally:
        await metrics_runner.cleanup()


async def test_an_unconfigured_provider_is_not_found(ledger: SqlLedger) -> None:
    app = public_app_for(Settings(public_http_port=0), ConfigFile(), ledger, Metrics())
    assert app is not None
    runner = await start_http(app, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            for path in ("/hooks/ses", "/hooks/sendgrid"):
                async with http.post(f"http://127.0.0.1:{bound_port(runner)}{path}") as response:
                    assert response.status == 404
    finally:
        await runner.cleanup()
    assert public_app_for(Settings(), ConfigFile(), ledger, Metrics()) is None


class DownLedger:
    async def record_feedback(self, report: FeedbackReport) -> None:
        raise LedgerUnavailable("ledger: OperationalError")


async def test_a_ledger_outage_is_a_503_so_the_provider_retries() -> None:
    async def one_report(_: web.Request, body: bytes) -> list[Item]:
        return [FeedbackReport("bounce", "sendgrid", "5.1.1", None, "mia@northwind.example")]

    metrics = Metrics()
    endpoint = HookEndpoint("sendgrid", 1000, one_report, DownLedger(), metrics)
    runner = await start_http(
        build_public_app([web.post("/hooks/sendgrid", endpoint.serve)]), "127.0.0.1", 0
    )
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{bound_port(runner)}/hooks/sendgrid"
            async with http.post(url, data=b"[]") as response:
                assert response.status == 503
    finally:
        await runner.cleanup()
    labels = {"source": "sendgrid", "outcome": "rejected", "reason": "ledger_unavailable"}
    assert sample_sum(metrics.registry, "herald_feedback_reports_total", **labels) == 1


async def test_herald_run_serves_the_webhooks_on_their_own_port(
    amqp_url: str, smtp_server: SmtpServer, tmp_path: Path, broker: Broker
) -> None:
    # Given `herald run` with HERALD_PUBLIC_HTTP_PORT=0 and SendGrid's verification key
    settings = service_settings(
        amqp_url,
        smtp_server,
        tmp_path,
        public_http_host="127.0.0.1",
        public_http_port=0,
        sendgrid_verification_key=sendgrid_public(SENDGRID_KEY),
    )
    herald = await build_service(settings)
    await herald.start()
    try:
        assert herald.public_http is not None and herald.http is not None
        public = f"http://127.0.0.1:{bound_port(herald.public_http)}"
        private = f"http://127.0.0.1:{bound_port(herald.http)}"
        assert public != private
        body = json.dumps([{"email": "mia@northwind.example", "event": "spamreport"}]).encode()
        async with aiohttp.ClientSession() as http:
            # When SendGrid posts a signed spam report to the public port
            async with http.post(
                public + "/hooks/sendgrid", data=body, headers=sendgrid_headers(SENDGRID_KEY, body)
            ) as response:
                assert response.status == 200
            # Then it is recorded and counted on the metrics port, which has no hooks
            (entry,) = await SuppressionList(herald.ledger).entries()
            assert (entry.address, entry.reason) == ("mia@northwind.example", "complaint")
            async with http.get(private + "/metrics") as response:
                assert (
                    'herald_feedback_reports_total{outcome="recorded",reason="complaint",'
                    'source="sendgrid"} 1.0' in await response.text()
                )
            async with http.post(private + "/hooks/sendgrid", data=body) as response:
                assert response.status in (404, 405)
            async with http.get(public + "/metrics") as response:
                assert response.status == 404
    finally:
        await herald.stop()
    # Stopped with the service.
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http, http.post(public + "/hooks/sendgrid"):
            pass


async def test_an_oversized_chunked_body_without_a_length_is_cut_off(hooks: Hooks) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):  # 40 x 8 KiB: past the 256 KiB of an SNS message
            yield b" " * 8192

    async with hooks.http.post(hooks.base + "/hooks/ses", data=chunks()) as response:
        assert (response.status, await response.text()) == (400, "too_large")
    await assert_nothing_changed(hooks)
