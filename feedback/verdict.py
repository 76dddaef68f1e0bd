"""What a provider webhook's verification and parsing hand to the listener: reports to record,
items verified but ignored (with a reason for the metrics), or a rejection that changes nothing.

`Rejected.status` is the HTTP answer: 400 for a malformed or oversized body, 401 for a missing,
bad or stale signature, an untrusted certificate URL or a topic Herald was not told about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from herald.errors import TransientError
from herald.ledger.feedback import KEY_PREFIX_CHARS, FeedbackReport

MAX_AGE_SECONDS = 300  # the 5 minutes, for SNS timestamps and SendGrid's header
_MESSAGE_ID = re.compile(r"<([0-9a-fA-F]{40})@[^<>@\s]{1,253}>")


class Rejected(Exception):
    """A request refused before anything is recorded; `reason` is a metric label."""

    def __init__(self, reason: str, status: int = 401) -> None:
        self.reason = reason
        self.status = status
        super().__init__(reason)


class ProviderUnavailable(TransientError):
    """The provider could not be reached to verify or confirm (certificate or SubscribeURL):
    the listener answers 503 so that the provider delivers again later."""

    retry_reason = "provider"


@dataclass(frozen=True, slots=True)
class Ignored:
    """A verified item that is neither a permanent bounce nor a complaint."""

    reason: str


Item = FeedbackReport | Ignored


def delivery_prefix(message_id: str | None) -> str | None:
    """The delivery a provider's copy of the Message-ID names, when it is one of Herald's
    (`<key[:40]@domain>`): the key's first 20 hex characters."""
    if message_id is None:
        return None
    match = _MESSAGE_ID.fullmatch(message_id.strip())
    return None if match is None else match.group(1).lower()[:KEY_PREFIX_CHARS]
