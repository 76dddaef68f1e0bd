"""The signatures of an outgoing webhook (NOTIFICATIONS.md 6.3): `X-Signature-256` (hex
HMAC-SHA256 of the raw body) and the Standard Webhooks headers `webhook-id`,
`webhook-timestamp` and `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
`<webhook-id>.<webhook-timestamp>.<raw body>`), so receivers can verify with the standard
libraries and reject replays.

Both are keyed with the webhook's one configured secret. `X-Signature-256` uses its bytes as
they are (unchanged since draft 1). `webhook-signature` uses the secret as the Standard
Webhooks libraries read it: a secret written in the standard's form, `whsec_` + base64, is keyed
with the base64-decoded part; any other secret with its UTF-8 bytes. A receiver therefore gives
its library the secret as configured: `Webhook("whsec_...")`, or `Webhook(secret.encode())`
for a plain secret (the libraries take bytes as the key itself).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping

from herald.errors import PermanentWebhookError

STANDARD_PREFIX = b"whsec_"

# One line of visible ASCII, spaces only inside: no CR, LF or other control character can
# reach the request head whatever a value was built from.
_HEADER_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


def signature(secret: bytes, body: bytes) -> str:
    """`X-Signature-256`: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def standard_key(secret: bytes) -> bytes:
    """The HMAC key of `webhook-signature` for a configured secret; ValueError for a `whsec_`
    secret whose rest is not base64 of at least one byte."""
    if not secret.startswith(STANDARD_PREFIX):
        return secret
    encoded = secret[len(STANDARD_PREFIX) :]
    try:
        # Padding is optional, as in the standard's libraries.
        key = base64.b64decode(encoded + b"=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64 after whsec_") from None
    if not key:
        raise ValueError("empty after whsec_")
    return key


def standard_signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature`: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def checked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers unchanged, or PermanentWebhookError naming the first that is not one line
    of printable ASCII (the request could never be sent as meant)."""
    for name, value in headers.items():
        if not _HEADER_VALUE.fullmatch(value):
            raise PermanentWebhookError(f"webhook header {name} is not one printable line")
    return dict(headers)
