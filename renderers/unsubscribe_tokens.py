"""Unsubscribe tokens (issue 19): what an unsubscribe link carries, created here for the
`List-Unsubscribe` header and the footer, verified by the public pages without a database.

A token names one address, one category and one partner (`catalog/optional.py`) and when it
was issued. It is a Fernet token (AES-128-CBC encryption, then HMAC-SHA256 over version,
issue time, IV and ciphertext) under a per-key-id key derived with HKDF-SHA256 from the
secret, so the address cannot be read from the link and a changed byte fails the HMAC. It is
prefixed by its key id, `<key id>.<Fernet token without "=" padding>`, so verification picks
the key directly; every character is URL-safe (`A-Z a-z 0-9 - _ .`).

`HERALD_UNSUBSCRIBE_KEYS` is one or more `id:secret`, comma-separated: the first key signs,
every key listed verifies. Rotate by putting a new key first and removing the old one once the
tokens it signed no longer matter. A key id is 1-16 of `A-Z a-z 0-9 _ -`; a secret is at least
32 characters and cannot contain a comma. A token is valid for `VALIDITY` (365 days, above the
180 the issue asks for, so that a link in a yearly renewal mail still works a year on), and
one dated more than a minute ahead of the clock is refused.

A typical token is about 160 characters: too long for the 64-character local part of an
`unsubscribe+<token>@<bounce domain>` mailto address (`renderers/unsubscribe_headers.py`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from herald.catalog.optional import UnsubscribeScope
from herald.clock import Clock, utc_now
from herald.errors import ConfigurationError, HeraldError

SETTING = "HERALD_UNSUBSCRIBE_KEYS"
VALIDITY = timedelta(days=365)
MIN_SECRET_LENGTH = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
_INFO = b"herald unsubscribe token v1 "


class InvalidUnsubscribeToken(HeraldError):
    """A token that does not verify. `reason` is `malformed`, `unknown_key` (its key id is
    not configured, or no longer), `invalid` (tampered, truncated, another key's) or
    `expired`: low-cardinality, for a page's answer and a metric label."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"unsubscribe token {reason}")


@dataclass(frozen=True, slots=True)
class TokenKey:
    key_id: str
    secret: bytes


@dataclass(frozen=True, slots=True)
class TokenSubject:
    """What a verified token names."""

    address: str
    scope: UnsubscribeScope
    issued_at: datetime
    key_id: str


def parse_keys(value: str) -> list[TokenKey]:
    """The keys of `HERALD_UNSUBSCRIBE_KEYS`, first the signing one; ValueError names what is
    wrong (never a secret)."""
    keys: list[TokenKey] = []
    for position, item in enumerate(value.split(","), start=1):
        key_id, separator, secret = item.strip().partition(":")
        if not separator or not _KEY_ID.match(key_id):
            raise ValueError(f"entry {position} must be id:secret, the id 1-16 of A-Z a-z 0-9 _ -")
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"the secret of key {key_id!r} must have at least {MIN_SECRET_LENGTH} characters"
            )
        if any(key.key_id == key_id for key in keys):
            raise ValueError(f"key id {key_id!r} is listed twice")
        keys.append(TokenKey(key_id, secret.encode()))
    return keys


def _fernet(key: TokenKey) -> Fernet:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO + key.key_id.encode()
    ).derive(key.secret)
    return Fernet(base64.urlsafe_b64encode(derived))


class UnsubscribeTokens:
    """Issue tokens with the first key; verify with any key listed."""

    def __init__(self, keys: Sequence[TokenKey], clock: Clock = utc_now) -> None:
        if not keys:
            raise ConfigurationError(f"{SETTING}: at least one id:secret is needed")
        self._signing = keys[0].key_id
        self._keys = {key.key_id: _fernet(key) for key in keys}
        self._clock = clock

    @classmethod
    def from_setting(cls, value: str, clock: Clock = utc_now) -> UnsubscribeTokens:
        """From the setting's text; a bad value is a one-line ConfigurationError naming it."""
        try:
            keys = parse_keys(value)
        except ValueError as exc:
            raise ConfigurationError(f"{SETTING}: {exc}") from None
        return cls(keys, clock)

    def issue(self, address: str, scope: UnsubscribeScope) -> str:
        payload = json.dumps(
            [scope.category, scope.partner_id, address], separators=(",", ":")
        ).encode()
        now = int(self._clock().timestamp())
        token = self._keys[self._signing].encrypt_at_time(payload, now)
        return f"{self._signing}.{token.decode('ascii').rstrip('=')}"

    def verify(self, token: str) -> TokenSubject:
        """What the token names; InvalidUnsubscribeToken when it does not verify."""
        key_id, separator, body = token.partition(".")
        if not separator or not _KEY_ID.match(key_id) or not body.isascii():
            raise InvalidUnsubscribeToken("malformed")
        fernet = self._keys.get(key_id)
        if fernet is None:
            raise InvalidUnsubscribeToken("unknown_key")
        padded = (body + "=" * (-len(body) % 4)).encode("ascii")
        try:
            # Only the canonical spelling: base64's spare bits would otherwise let several
            # strings stand for one token.
            canonical = base64.urlsafe_b64encode(base64.urlsafe_b64decode(padded))
        except (binascii.Error, ValueError):
            raise InvalidUnsubscribeToken("malformed") from None
        if canonical != padded:
            raise InvalidUnsubscribeToken("malformed")
        now = int(self._clock().timestamp())
        try:
            payload = fernet.decrypt_at_time(padded, int(VALIDITY.total_seconds()), now)
            issued = fernet.extract_timestamp(padded)
        except InvalidToken:
            raise InvalidUnsubscribeToken(self._why(fernet, padded, now)) from None
        try:
            category, partner_id, address = json.loads(payload)
        except ValueError:  # signed by us, so never; but a page must not crash on it
            raise InvalidUnsubscribeToken("malformed") from None
        return TokenSubject(
            address=address,
            scope=UnsubscribeScope(category, partner_id),
            issued_at=datetime.fromtimestamp(issued, UTC),
            key_id=key_id,
        )

    @staticmethod
    def _why(fernet: Fernet, padded: bytes, now: int) -> str:
        """`expired` when the token is authentic but too old, `invalid` otherwise."""
        try:
            fernet.decrypt_at_time(padded, 2**40, now)  # no practical age limit
        except InvalidToken:
            return "invalid"
        return "expired"
