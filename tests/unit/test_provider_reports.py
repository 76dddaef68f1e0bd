"""What SES notifications and SendGrid events become (`feedback/ses.py`, `feedback/sendgrid.py`):
permanent bounces and complaints are reports tied to Herald's Message-ID; transient bounces,
blocks, deliveries and other events are ignored; SendGrid's signature and timestamp checked."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from herald.errors import ConfigurationError
from herald.feedback.sendgrid import SendGridWebhook, load_verification_key
from herald.feedback.ses import ses_items
from herald.feedback.verdict import Ignored, Rejected, delivery_prefix
from herald.ledger.feedback import FeedbackReport
from herald.service.settings import load_settings
from tests.pki import sendgrid_headers, sendgrid_key, sendgrid_public

KEY = "0123456789abcdef0123" + "a" * 20
MESSAGE_ID = f"<{KEY}@herald.example>"


def ses_bounce(bounce_type: str = "Permanent", **mail: Any) -> str:
    return json.dumps(
        {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": bounce_type,
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {
                        "emailAddress": "mia@northwind.example",
                        "action": "failed",
                        "status": "5.1.1",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                    },
                    {"emailAddress": "jonas@northwind.example"},
                ],
                "timestamp": "2026-12-07T10:00:00.000Z",
                "feedbackId": "0100-feedback",
            },
            "mail": {
                "timestamp": "2026-12-07T09:59:00.000Z",
                "source": "notifications@operator.example",
                "messageId": "0100018c-ses-own-id",
                "destination": ["mia@northwind.example"],
                "commonHeaders": {"messageId": MESSAGE_ID, "subject": "Your order"},
                **mail,
            },
        }
    )


def test_a_permanent_ses_bounce_reports_each_recipient() -> None:
    assert ses_items(ses_bounce()) == [
        FeedbackReport(
            "bounce",
            "ses",
            "ses Permanent/General 5.1.1 smtp; 550 5.1.1 user unknown",
            KEY[:20],
            "mia@northwind.example",
        ),
        FeedbackReport(
            "bounce", "ses", "ses Permanent/General", KEY[:20], "jonas@northwind.example"
        ),
    ]


@pytest.mark.parametrize("bounce_type", ["Transient", "Undetermined"])
def test_other_ses_bounces_are_ignored(bounce_type: str) -> None:
    assert ses_items(ses_bounce(bounce_type)) == [Ignored("not_permanent")]


def test_an_ses_complaint_reports_each_complainant() -> None:
    document = {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "mia@northwind.example"}],
            "complaintFeedbackType": "abuse",
        },
        "mail": {"headers": [{"name": "Message-ID", "value": MESSAGE_ID}]},
    }
    assert ses_items(json.dumps(document)) == [
        FeedbackReport("complaint", "ses", "ses complaint abuse", KEY[:20], "mia@northwind.example")
    ]


def test_ses_deliveries_and_unknown_types_are_ignored() -> None:
    assert ses_items(json.dumps({"notificationType": "Delivery", "mail": {}})) == [
        Ignored("not_a_report")
    ]
    assert ses_items(json.dumps({"eventType": "Open"})) == [Ignored("not_a_report")]


def test_a_foreign_message_id_names_no_delivery() -> None:
    (report, _) = ses_items(ses_bounce(commonHeaders={"messageId": "<abc@elsewhere.example>"}))
    assert isinstance(report, FeedbackReport)
    assert (report.delivery_prefix, report.address) == (None, "mia@northwind.example")


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        json.dumps({"notificationType": "Bounce"}),
        json.dumps({"notificationType": "Complaint", "complaint": {}}),
        ses_bounce().replace("mia@northwind.example", "not an address"),
        ses_bounce().replace("mia@northwind.example", "mia@northwind.example\\nBcc: x@y"),
        json.dumps(
            {
                "notificationType": "Bounce",
                "bounce": {
                    "bounceType": "Permanent",
                    "bouncedRecipients": [{"emailAddress": "a@b.example"}] * 101,
                },
            }
        ),
    ],
)
def test_a_malformed_ses_notification_is_a_400(message: str) -> None:
    with pytest.raises(Rejected) as rejected:
        ses_items(message)
    assert rejected.value.status == 400


@pytest.mark.parametrize(
    ("message_id", "prefix"),
    [
        (MESSAGE_ID, KEY[:20]),
        (f" <{KEY.upper()}@herald.example> ", KEY[:20]),
        (f"<{KEY[:39]}@herald.example>", None),
        (f"{KEY}@herald.example", None),
        (f"<{KEY}@herald.example>\n<x@y>", None),
        (None, None),
    ],
)
def test_only_heralds_message_ids_name_a_delivery(
    message_id: str | None, prefix: str | None
) -> None:
    assert delivery_prefix(message_id) == prefix


# SendGrid ------------------------------------------------------------------------------------

PRIVATE = sendgrid_key()


def events(*items: dict[str, Any]) -> bytes:
    return json.dumps(list(items)).encode()


def sendgrid() -> SendGridWebhook:
    return SendGridWebhook(load_verification_key(sendgrid_public(PRIVATE)))


def headers_of(body: bytes, **kwargs: Any) -> tuple[str, str]:
    headers = sendgrid_headers(PRIVATE, body, **kwargs)
    return (
        headers["X-Twilio-Email-Event-Webhook-Signature"],
        headers["X-Twilio-Email-Event-Webhook-Timestamp"],
    )


BOUNCE = {
    "email": "mia@northwind.example",
    "event": "bounce",
    "type": "bounce",
    "status": "5.1.1",
    "reason": "550 5.1.1 user unknown",
    "smtp-id": MESSAGE_ID,
    "sg_event_id": "ev-1",
    "timestamp": 1765101600,
}


def test_sendgrid_events_become_reports_or_are_ignored() -> None:
    body = events(
        BOUNCE,
        {**BOUNCE, "type": "blocked", "status": "5.7.1"},
        {**BOUNCE, "status": "4.2.2"},
        {"email": "a@x.example", "event": "dropped", "reason": "Bounced Address"},
        {"email": "b@x.example", "event": "dropped", "reason": "Invalid"},
        {"email": "c@x.example", "event": "dropped", "reason": "Spam Reporting Address"},
        {"email": "d@x.example", "event": "dropped", "reason": "Unsubscribed Address"},
        {"email": "e@x.example", "event": "spamreport", "smtp-id": MESSAGE_ID},
        {"email": "f@x.example", "event": "delivered"},
        {"email": "g@x.example", "event": "open", "useragent": "x"},
    )
    assert sendgrid().handle(*headers_of(body), body) == [
        FeedbackReport(
            "bounce",
            "sendgrid",
            "sendgrid bounce 5.1.1 550 5.1.1 user unknown",
            KEY[:20],
            "mia@northwind.example",
        ),
        Ignored("blocked"),
        Ignored("not_permanent"),
        FeedbackReport(
            "bounce", "sendgrid", "sendgrid dropped: Bounced Address", None, "a@x.example"
        ),
        FeedbackReport("bounce", "sendgrid", "sendgrid dropped: Invalid", None, "b@x.example"),
        FeedbackReport(
            "complaint", "sendgrid", "sendgrid dropped: Spam Reporting Address", None, "c@x.example"
        ),
        Ignored("dropped_other"),
        FeedbackReport("complaint", "sendgrid", "sendgrid spamreport", KEY[:20], "e@x.example"),
        Ignored("not_a_report"),
        Ignored("not_a_report"),
    ]


def rejection(signature: str | None, timestamp: str | None, body: bytes) -> tuple[str, int]:
    with pytest.raises(Rejected) as rejected:
        sendgrid().handle(signature, timestamp, body)
    return rejected.value.reason, rejected.value.status


def test_a_tampered_sendgrid_body_or_timestamp_is_rejected() -> None:
    body = events(BOUNCE)
    signature, timestamp = headers_of(body)
    assert rejection(signature, timestamp, body.replace(b"5.1.1", b"5.1.2")) == (
        "bad_signature",
        401,
    )
    assert rejection(signature, str(int(timestamp) - 1), body) == ("bad_signature", 401)


def test_another_keys_signature_is_rejected() -> None:
    body = events(BOUNCE)
    other = sendgrid_headers(sendgrid_key(), body)
    assert rejection(
        other["X-Twilio-Email-Event-Webhook-Signature"],
        other["X-Twilio-Email-Event-Webhook-Timestamp"],
        body,
    ) == ("bad_signature", 401)


def test_unsigned_sendgrid_requests_are_rejected() -> None:
    body = events(BOUNCE)
    signature, timestamp = headers_of(body)
    assert rejection(None, timestamp, body) == ("unsigned", 401)
    assert rejection(signature, None, body) == ("unsigned", 401)
    assert rejection("", "", body) == ("unsigned", 401)
    assert rejection("@@@", timestamp, body) == ("bad_signature", 401)
    assert rejection(signature, "12.5", body) == ("bad_signature", 401)


@pytest.mark.parametrize("age", [301, -301, 86_400])
def test_a_replayed_sendgrid_request_is_stale(age: int) -> None:
    body = events(BOUNCE)
    assert rejection(*headers_of(body, timestamp=int(time.time()) - age), body) == ("stale", 401)


@pytest.mark.parametrize(
    "body",
    [b"{}", b"not json", events({"event": "bounce"}), events({**BOUNCE, "email": "x"})],
)
def test_a_malformed_signed_sendgrid_body_is_a_400(body: bytes) -> None:
    assert rejection(*headers_of(body), body) == ("malformed", 400)


def test_an_oversized_sendgrid_body_is_a_400() -> None:
    body = events(*[BOUNCE] * 5000)
    assert len(body) > 1_048_576
    assert rejection(*headers_of(body), body) == ("too_large", 400)


@pytest.mark.parametrize(
    "value",
    [
        "not base64!",
        "c2hvcnQ=",
        # An RSA key and a P-384 key: well-formed, but not what SendGrid uses.
        "RSA",
        "P384",
    ],
)
def test_a_bad_verification_key_stops_the_start_naming_the_setting(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if value == "RSA":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
        value = base64.b64encode(key.public_bytes(*spki)).decode()
    elif value == "P384":
        value = base64.b64encode(
            ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(*spki)
        ).decode()
    monkeypatch.setenv("HERALD_PUBLIC_HTTP_PORT", "8080")
    monkeypatch.setenv("HERALD_SENDGRID_VERIFICATION_KEY", value)
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    message = str(error.value)
    assert "HERALD_SENDGRID_VERIFICATION_KEY" in message and "\n" not in message


def test_the_verification_key_as_sendgrid_shows_it_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_PUBLIC_HTTP_PORT", "8080")
    monkeypatch.setenv("HERALD_SENDGRID_VERIFICATION_KEY", sendgrid_public(PRIVATE))
    assert load_settings().sendgrid_key is not None
    monkeypatch.delenv("HERALD_PUBLIC_HTTP_PORT")
    with pytest.raises(ConfigurationError, match="needs HERALD_PUBLIC_HTTP_PORT"):
        load_settings()
