"""Amazon SES bounce and complaint notifications (the `Message` of a verified SNS delivery) to
ledger reports: a Permanent bounce suppresses each bounced recipient, a complaint each
complained recipient; transient and undetermined bounces, deliveries and anything else are
ignored. The delivery is named by Herald's Message-ID (`<40 hex@domain>`), which SES copies
into `mail.commonHeaders.messageId` (and `mail.headers` when original headers are included).
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from herald.feedback.sns import SnsVerifier
from herald.feedback.verdict import Ignored, Item, Rejected, delivery_prefix
from herald.ledger.feedback import FeedbackReport

_Address = Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,255}$")]
_Text = Annotated[str, StringConstraints(max_length=4000)]
_Word = Annotated[str, StringConstraints(max_length=100)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class BouncedRecipient(_Model):
    emailAddress: _Address
    status: _Word | None = None
    diagnosticCode: _Text | None = None


class Bounce(_Model):
    bounceType: _Word
    bounceSubType: _Word | None = None
    bouncedRecipients: Annotated[list[BouncedRecipient], Field(max_length=100)]


class ComplainedRecipient(_Model):
    emailAddress: _Address


class Complaint(_Model):
    complainedRecipients: Annotated[list[ComplainedRecipient], Field(max_length=100)]
    complaintFeedbackType: _Word | None = None


class Header(_Model):
    name: Annotated[str, StringConstraints(max_length=200)]
    value: Annotated[str, StringConstraints(max_length=20_000)]


class CommonHeaders(_Model):
    messageId: _Text | None = None


class Mail(_Model):
    commonHeaders: CommonHeaders | None = None
    headers: Annotated[list[Header], Field(max_length=500)] = []


class SesNotification(_Model):
    # `eventType` is the same field in SES event publishing (configuration sets).
    notificationType: _Word | None = None
    eventType: _Word | None = None
    bounce: Bounce | None = None
    complaint: Complaint | None = None
    mail: Mail | None = None


def _message_id(mail: Mail | None) -> str | None:
    if mail is None:
        return None
    if mail.commonHeaders is not None and mail.commonHeaders.messageId is not None:
        return mail.commonHeaders.messageId
    return next((h.value for h in mail.headers if h.name.lower() == "message-id"), None)


def ses_items(message: str) -> list[Item]:
    """The reports of one SES notification; Rejected (400) when it is not one."""
    try:
        notification = SesNotification.model_validate(json.loads(message))
    except (ValueError, ValidationError):
        raise Rejected("malformed", 400) from None
    kind = notification.notificationType or notification.eventType
    prefix = delivery_prefix(_message_id(notification.mail))
    if kind == "Bounce":
        if notification.bounce is None:
            raise Rejected("malformed", 400)
        bounce = notification.bounce
        if bounce.bounceType != "Permanent":
            return [Ignored("not_permanent")]
        return [
            FeedbackReport(
                "bounce",
                "ses",
                " ".join(
                    part
                    for part in (
                        f"ses {bounce.bounceType}/{bounce.bounceSubType or '-'}",
                        recipient.status,
                        recipient.diagnosticCode,
                    )
                    if part
                ),
                prefix,
                recipient.emailAddress,
            )
            for recipient in bounce.bouncedRecipients
        ]
    if kind == "Complaint":
        if notification.complaint is None:
            raise Rejected("malformed", 400)
        complaint = notification.complaint
        evidence = f"ses complaint {complaint.complaintFeedbackType or 'unspecified'}"
        return [
            FeedbackReport("complaint", "ses", evidence, prefix, recipient.emailAddress)
            for recipient in complaint.complainedRecipients
        ]
    return [Ignored("not_a_report")]


class SesWebhook:
    """`POST /hooks/ses`: verify the SNS delivery, confirm a subscription, read SES's report."""

    def __init__(self, verifier: SnsVerifier) -> None:
        self.verifier = verifier

    async def handle(self, body: bytes) -> list[Item]:
        message = await self.verifier.verify(body)
        if message.Type == "SubscriptionConfirmation":
            await self.verifier.confirm(message)
            return [Ignored("subscription_confirmed")]
        if message.Type == "UnsubscribeConfirmation":
            return [Ignored("unsubscribed")]
        return ses_items(message.Message)
