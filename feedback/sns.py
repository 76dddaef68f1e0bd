"""Amazon SNS message verification for `POST /hooks/ses`, per AWS's "Verifying the signatures of
Amazon SNS messages": the JSON body (bounded), the fields each `Type` requires, the string to
sign, the RSA signature (SignatureVersion 1: PKCS#1 v1.5 with SHA-1, 2: with SHA-256) against
the certificate at `SigningCertURL`, a `Timestamp` within 5 minutes, a `TopicArn` of the config.

Checks run cheapest first, and the topic before any fetch: a message for a topic Herald was not
told about is refused without contacting anyone.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Annotated, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, model_validator

from herald.clock import Clock, utc_now
from herald.feedback.certificates import CertificateFetcher
from herald.feedback.verdict import MAX_AGE_SECONDS, Rejected

MAX_BODY_BYTES = 262_144  # SNS messages are at most 256 KiB

_Short = Annotated[str, StringConstraints(max_length=2048)]
_FIELDS_TO_SIGN = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_FIELDS_TO_SIGN["UnsubscribeConfirmation"] = _FIELDS_TO_SIGN["SubscriptionConfirmation"]
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


class SnsMessage(BaseModel):
    """The fields of an SNS HTTP(S) delivery that Herald reads (AWS's names)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    Type: Literal["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]
    MessageId: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    TopicArn: Annotated[str, StringConstraints(min_length=1, max_length=400)]
    Message: Annotated[str, StringConstraints(max_length=MAX_BODY_BYTES)]
    Timestamp: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    Subject: _Short | None = None
    SubscribeURL: _Short | None = None
    Token: _Short | None = None
    SignatureVersion: _Short | None = None
    Signature: _Short | None = None
    SigningCertURL: _Short | None = None

    @model_validator(mode="after")
    def _confirmations_carry_their_url(self) -> SnsMessage:
        if self.Type != "Notification" and (self.SubscribeURL is None or self.Token is None):
            raise ValueError(f"{self.Type} needs SubscribeURL and Token")
        return self


def parse_sns(body: bytes) -> SnsMessage:
    """The message in a request body; Rejected (400) when too large or malformed."""
    if len(body) > MAX_BODY_BYTES:
        raise Rejected("too_large", 400)
    try:
        return SnsMessage.model_validate(json.loads(body))
    except (ValueError, ValidationError):  # JSONDecodeError and UnicodeDecodeError too
        raise Rejected("malformed", 400) from None


def string_to_sign(message: SnsMessage) -> bytes:
    """AWS's canonical form: `Name\\nvalue\\n` for each signed field present, in byte order."""
    parts = []
    for name in _FIELDS_TO_SIGN[message.Type]:
        value = getattr(message, name)
        if value is not None:  # only Subject is optional
            parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode()


def check_fresh(timestamp: str, now: datetime, max_age_seconds: float = MAX_AGE_SECONDS) -> None:
    """Rejected ("stale") unless `timestamp` is within `max_age_seconds` of `now`, either way."""
    try:
        sent = datetime.fromisoformat(timestamp)
    except ValueError:
        raise Rejected("malformed", 400) from None
    if sent.tzinfo is None:
        raise Rejected("malformed", 400)
    if abs(now - sent) > timedelta(seconds=max_age_seconds):
        raise Rejected("stale")


class SnsVerifier:
    """Verifies SNS deliveries for the configured topics; fetches certificates through
    `fetcher` (which also confirms subscriptions)."""

    def __init__(
        self,
        topics: Collection[str],
        fetcher: CertificateFetcher,
        *,
        clock: Clock = utc_now,
        max_age_seconds: float = MAX_AGE_SECONDS,
    ) -> None:
        self.topics = frozenset(topics)
        self.fetcher = fetcher
        self._clock = clock
        self._max_age = max_age_seconds

    async def verify(self, body: bytes) -> SnsMessage:
        """The verified message, or Rejected; nothing is fetched for an unknown topic."""
        message = parse_sns(body)
        if not (message.Signature and message.SigningCertURL and message.SignatureVersion):
            raise Rejected("unsigned")
        algorithm = _HASHES.get(message.SignatureVersion)
        if algorithm is None:
            raise Rejected("bad_signature_version")
        if message.TopicArn not in self.topics:
            raise Rejected("unknown_topic")
        check_fresh(message.Timestamp, self._clock(), self._max_age)
        try:
            signature = base64.b64decode(message.Signature, validate=True)
        except (binascii.Error, ValueError):
            raise Rejected("bad_signature") from None
        key = await self.fetcher.public_key(message.SigningCertURL)
        try:
            key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise Rejected("bad_signature") from None
        return message

    async def confirm(self, message: SnsMessage) -> None:
        """Confirm a verified SubscriptionConfirmation (its topic is configured)."""
        assert message.Type == "SubscriptionConfirmation" and message.SubscribeURL is not None
        await self.fetcher.confirm(message.SubscribeURL)
