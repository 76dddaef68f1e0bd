"""SNS message verification (`feedback/sns.py`) with test keys: AWS's string to sign, RSA
signatures of SignatureVersion 1 (SHA-1) and 2 (SHA-256) accepted; a tampered field, another
key, no signature, a stale or future timestamp, an untrusted certificate URL, an expired
certificate or a topic not configured rejected (the last without fetching anything)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from herald.feedback.certificates import CERT_URL, SUBSCRIBE_URL, CertificateFetcher
from herald.feedback.sns import SnsVerifier, parse_sns, string_to_sign
from herald.feedback.verdict import Rejected
from tests.pki import (
    TOPIC,
    Authority,
    SnsSigner,
    pem,
    sns_notification,
    sns_subscription,
    sns_timestamp,
    subscribe_url,
)


class ServedFetcher(CertificateFetcher):
    """The fetcher with its HTTP GET replaced by a fixed answer (the integration test fetches
    over real TLS); everything around the GET (URL rule, parsing, validity, cache) is real."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        super().__init__()
        self.body, self.status = body, status
        self.fetched: list[str] = []

    async def _get(self, url: str, limit: int) -> tuple[int, bytes]:
        self.fetched.append(url)
        return self.status, self.body


@pytest.fixture(scope="module")
def signer() -> SnsSigner:
    return SnsSigner(Authority())


def verifier(signer: SnsSigner, **kwargs: Any) -> tuple[SnsVerifier, ServedFetcher]:
    fetcher = ServedFetcher(signer.certificate_pem)
    return SnsVerifier([TOPIC], fetcher, **kwargs), fetcher


def body(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def test_the_string_to_sign_of_a_notification_is_awss_canonical_form() -> None:
    document = {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": TOPIC,
        "Subject": "Hi",
        "Message": '{"a": 1}\nline two',
        "Timestamp": "2026-12-07T10:00:00.000Z",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        "SignatureVersion": "1",
    }
    assert string_to_sign(parse_sns(body(document))) == (
        b'Message\n{"a": 1}\nline two\nMessageId\nm-1\nSubject\nHi\n'
        b"Timestamp\n2026-12-07T10:00:00.000Z\n"
        b"TopicArn\narn:aws:sns:us-east-1:123456789012:herald-ses-feedback\nType\nNotification\n"
    )
    del document["Subject"]  # no Subject: no Subject line at all
    assert b"Subject" not in string_to_sign(parse_sns(body(document)))


def test_the_string_to_sign_of_a_confirmation_has_the_url_and_token() -> None:
    document = sns_subscription(
        "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&x=1"
    )
    document["Timestamp"] = "2026-12-07T10:00:00.000Z"
    assert (
        string_to_sign(parse_sns(body(document)))
        == (
            f"Message\n{document['Message']}\nMessageId\n{document['MessageId']}\n"
            f"SubscribeURL\n{document['SubscribeURL']}\nTimestamp\n2026-12-07T10:00:00.000Z\n"
            f"Token\n{document['Token']}\nTopicArn\n{TOPIC}\nType\nSubscriptionConfirmation\n"
        ).encode()
    )


@pytest.mark.parametrize("version", ["1", "2"])
async def test_a_signed_notification_is_accepted(signer: SnsSigner, version: str) -> None:
    check, fetcher = verifier(signer)
    message = await check.verify(body(signer.sign(sns_notification("{}"), version)))
    assert (message.Type, message.Message) == ("Notification", "{}")
    # The certificate is fetched once and cached.
    await check.verify(body(signer.sign(sns_notification("{}"), version)))
    assert fetcher.fetched == [signer.cert_url]


async def test_a_signed_subscription_confirmation_is_accepted(signer: SnsSigner) -> None:
    check, _ = verifier(signer)
    message = await check.verify(body(signer.sign(sns_subscription(subscribe_url()), "2")))
    assert message.SubscribeURL == subscribe_url()


def tamper(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**document, **changes}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Message": '{"tampered": true}'}, "bad_signature"),
        ({"Subject": "Other"}, "bad_signature"),
        ({"MessageId": "another"}, "bad_signature"),
        (
            {"Type": "SubscriptionConfirmation", "SubscribeURL": "https://x", "Token": "t"},
            "bad_signature",
        ),
        ({"SignatureVersion": "2"}, "bad_signature"),  # a v1 signature checked as v2
        ({"SignatureVersion": "3"}, "bad_signature_version"),
        ({"Signature": "not base64!"}, "bad_signature"),
        ({"Signature": None}, "unsigned"),
        ({"SigningCertURL": None}, "unsigned"),
        ({"TopicArn": "arn:aws:sns:us-east-1:123456789012:someone-else"}, "unknown_topic"),
    ],
)
async def test_a_tampered_or_unsigned_notification_is_rejected(
    signer: SnsSigner, change: dict[str, Any], reason: str
) -> None:
    check, _ = verifier(signer)
    signed = signer.sign(sns_notification("{}"), "1")
    document = {k: v for k, v in tamper(signed, **change).items() if v is not None}
    with pytest.raises(Rejected) as rejected:
        await check.verify(body(document))
    assert (rejected.value.reason, rejected.value.status) == (reason, 401)


async def test_a_signature_by_another_key_is_rejected(signer: SnsSigner) -> None:
    check, _ = verifier(signer)
    impostor = SnsSigner(signer.authority)  # a different key behind the same URL
    with pytest.raises(Rejected, match="bad_signature"):
        await check.verify(body(impostor.sign(sns_notification("{}"), "2")))


async def test_an_unknown_topic_is_refused_without_fetching(signer: SnsSigner) -> None:
    check, fetcher = verifier(signer)
    other = "arn:aws:sns:us-east-1:123456789012:someone-else"
    for document in (
        sns_notification("{}", topic=other),
        sns_subscription(subscribe_url(other), topic=other),
    ):
        with pytest.raises(Rejected, match="unknown_topic"):
            await check.verify(body(signer.sign(document, "2")))
    assert fetcher.fetched == []


@pytest.mark.parametrize(
    "offset", [timedelta(minutes=-6), timedelta(minutes=6), timedelta(days=-1)]
)
async def test_a_stale_or_future_timestamp_is_rejected(
    signer: SnsSigner, offset: timedelta
) -> None:
    check, fetcher = verifier(signer)
    document = sns_notification("{}", Timestamp=sns_timestamp(datetime.now(UTC) + offset))
    with pytest.raises(Rejected, match="stale"):
        await check.verify(body(signer.sign(document, "2")))
    assert fetcher.fetched == []


async def test_four_minutes_old_is_still_fresh(signer: SnsSigner) -> None:
    check, _ = verifier(signer)
    document = sns_notification(
        "{}", Timestamp=sns_timestamp(datetime.now(UTC) - timedelta(minutes=4))
    )
    await check.verify(body(signer.sign(document, "2")))


BAD_CERT_URLS = [
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
    "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-1.pem",
    "https://evil.example/sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
    "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
    "https://evil.example@sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
    "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-1.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.txt",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem?x=1",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem#x",
    "https://sns.us-east-1.amazonaws.com/../SimpleNotificationService-1.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem\n",
    "https://sns.amazonaws.com/SimpleNotificationService-1.pem",
    "https://s3.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
    "https://sns.us-east-1.amazonaws.com.cn/SimpleNotificationService-1.pem",
    "https://SNS.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
    "https://sns.us-east-1.amazonaws.com%2F@evil.example/x.pem",
]


@pytest.mark.parametrize("url", BAD_CERT_URLS)
async def test_an_untrusted_certificate_url_is_rejected_before_any_fetch(
    signer: SnsSigner, url: str
) -> None:
    assert CERT_URL.fullmatch(url) is None
    check, fetcher = verifier(signer)
    document = SnsSigner(signer.authority, signer.key, url).sign(sns_notification("{}"), "2")
    with pytest.raises(Rejected, match="bad_certificate_url"):
        await check.verify(body(document))
    assert fetcher.fetched == []


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem",
        "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.ap-southeast-2.amazonaws.com/folder/SimpleNotificationService-1.pem",
    ],
)
def test_real_shaped_certificate_urls_are_trusted(url: str) -> None:
    assert CERT_URL.fullmatch(url) is not None


def test_only_sns_confirmation_urls_are_followed() -> None:
    assert SUBSCRIBE_URL.fullmatch(subscribe_url()) is not None
    for url in (
        subscribe_url(host="evil.example"),
        subscribe_url().replace("https://", "http://"),
        subscribe_url(host="sns.us-east-1.amazonaws.com:444"),
        "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&TopicArn=x",
        subscribe_url() + "#fragment",
        subscribe_url() + "/../x",
    ):
        assert SUBSCRIBE_URL.fullmatch(url) is None, url


async def test_a_confirmation_to_an_untrusted_url_is_refused(signer: SnsSigner) -> None:
    check, fetcher = verifier(signer)
    document = signer.sign(sns_subscription(subscribe_url(host="evil.example")), "2")
    message = await check.verify(body(document))  # signed by "AWS" all the same
    with pytest.raises(Rejected, match="bad_subscribe_url"):
        await check.confirm(message)
    assert fetcher.fetched == [signer.cert_url]


async def test_an_expired_signing_certificate_is_rejected(signer: SnsSigner) -> None:
    now = datetime.now(UTC)
    expired = signer.authority.issue(
        "sns.amazonaws.com",
        signer.key,
        valid_from=now - timedelta(days=30),
        valid_until=now - timedelta(days=1),
    )
    check = SnsVerifier([TOPIC], ServedFetcher(pem(expired)))
    with pytest.raises(Rejected, match="expired_certificate"):
        await check.verify(body(signer.sign(sns_notification("{}"), "2")))


async def test_a_missing_certificate_is_rejected(signer: SnsSigner) -> None:
    check = SnsVerifier([TOPIC], ServedFetcher(b"<Error/>", status=404))
    with pytest.raises(Rejected, match="certificate_not_found"):
        await check.verify(body(signer.sign(sns_notification("{}"), "2")))


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"Type": "Notification"}',
        json.dumps({**sns_notification("{}"), "Type": "Other"}).encode(),
        json.dumps({**sns_subscription("https://x"), "Token": None}).encode(),
        b"\xff\xfe",
    ],
)
async def test_a_malformed_body_is_a_400(signer: SnsSigner, raw: bytes) -> None:
    check, fetcher = verifier(signer)
    with pytest.raises(Rejected) as rejected:
        await check.verify(raw)
    assert (rejected.value.reason, rejected.value.status) == ("malformed", 400)
    assert fetcher.fetched == []


async def test_an_oversized_body_is_a_400(signer: SnsSigner) -> None:
    check, _ = verifier(signer)
    document = signer.sign(sns_notification("x" * 300_000), "2")
    with pytest.raises(Rejected) as rejected:
        await check.verify(body(document))
    assert (rejected.value.reason, rejected.value.status) == ("too_large", 400)
