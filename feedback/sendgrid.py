"""SendGrid's Event Webhook for `POST /hooks/sendgrid`: the signature (ECDSA P-256 with SHA-256
over the timestamp header's bytes followed by the raw body, base64 DER in
`X-Twilio-Email-Event-Webhook-Signature`), checked with the verification key SendGrid shows
(`HERALD_SENDGRID_VERIFICATION_KEY`, base64 DER SubjectPublicKeyInfo); the timestamp within 5
minutes; then the events array to ledger reports:

- `bounce` with `type` "bounce" (not "blocked", SendGrid's name for a refusal it will retry or
  that names the sender, not the address) and an enhanced status 5.x.x: a bounce;
- `dropped` whose reason says the address itself is bad: "Bounced Address" (SendGrid's own list
  of addresses that bounced before) and "Invalid" (an invalid address): a bounce;
  "Spam Reporting Address" (the address complained before): a complaint; any other reason
  (unsubscribed, quota, spam content, bad SMTPAPI header) is about the message or the account,
  not the address, and is ignored;
- `spamreport`: a complaint; every other event is ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from herald.clock import Clock, utc_now
from herald.feedback.verdict import MAX_AGE_SECONDS, Ignored, Item, Rejected, delivery_prefix
from herald.ledger.feedback import FeedbackKind, FeedbackReport

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# SendGrid posts batches of up to 768 KB.
MAX_BODY_BYTES = 1_048_576
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HARD_STATUS = re.compile(r"5\.[0-9]{1,3}\.[0-9]{1,3}")
_DROPPED: dict[str, FeedbackKind] = {
    "Bounced Address": "bounce",
    "Invalid": "bounce",
    "Spam Reporting Address": "complaint",
}
_Word = Annotated[str, StringConstraints(max_length=100)]


class SendGridEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    event: _Word
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,255}$")]
    smtp_id: Annotated[str, StringConstraints(max_length=1000)] | None = Field(
        default=None, alias="smtp-id"
    )
    type: _Word | None = None
    status: _Word | None = None
    reason: Annotated[str, StringConstraints(max_length=4000)] | None = None


_EVENTS = TypeAdapter(Annotated[list[SendGridEvent], Field(max_length=10_000)])


def load_verification_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key (base64 DER, as its settings page shows it); ValueError
    unless it is a P-256 public key."""
    try:
        key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (binascii.Error, ValueError, UnsupportedAlgorithm):
        raise ValueError("must be SendGrid's verification key (base64 DER public key)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("must be an ECDSA P-256 public key, as SendGrid shows it")
    return key


class SendGridWebhook:
    """`POST /hooks/sendgrid`: verify the signature and timestamp, then read the events."""

    def __init__(
        self,
        key: ec.EllipticCurvePublicKey,
        *,
        clock: Clock = utc_now,
        max_age_seconds: float = MAX_AGE_SECONDS,
    ) -> None:
        self._key = key
        self._clock = clock
        self._max_age = max_age_seconds

    def verify(self, signature: str | None, timestamp: str | None, body: bytes) -> None:
        """Rejected unless SendGrid signed `timestamp` + `body` within the last 5 minutes."""
        if len(body) > MAX_BODY_BYTES:
            raise Rejected("too_large", 400)
        if not signature or not timestamp:
            raise Rejected("unsigned")
        if _TIMESTAMP.fullmatch(timestamp) is None:
            raise Rejected("bad_signature")
        if abs(self._clock().timestamp() - int(timestamp)) > self._max_age:
            raise Rejected("stale")
        try:
            der = base64.b64decode(signature, validate=True)
            self._key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        except (binascii.Error, ValueError, InvalidSignature):
            raise Rejected("bad_signature") from None

    def handle(self, signature: str | None, timestamp: str | None, body: bytes) -> list[Item]:
        self.verify(signature, timestamp, body)
        try:
            events = _EVENTS.validate_python(json.loads(body))
        except (ValueError, ValidationError):
            raise Rejected("malformed", 400) from None
        return [sendgrid_item(event) for event in events]


def sendgrid_item(event: SendGridEvent) -> Item:
    """One event's report, or why it is ignored."""
    kind: FeedbackKind
    if event.event == "bounce":
        if event.type is not None and event.type != "bounce":
            return Ignored("blocked")
        if event.status is None or _HARD_STATUS.fullmatch(event.status) is None:
            return Ignored("not_permanent")
        kind = "bounce"
        evidence = f"sendgrid bounce {event.status} {event.reason or ''}"
    elif event.event == "dropped":
        dropped = _DROPPED.get(event.reason or "")
        if dropped is None:
            return Ignored("dropped_other")
        kind = dropped
        evidence = f"sendgrid dropped: {event.reason}"
    elif event.event == "spamreport":
        kind = "complaint"
        evidence = "sendgrid spamreport"
    else:
        return Ignored("not_a_report")
    prefix = delivery_prefix(event.smtp_id)
    return FeedbackReport(kind, "sendgrid", evidence.strip(), prefix, event.email)
