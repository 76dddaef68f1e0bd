"""The VERP return path (`HERALD_BOUNCE_DOMAIN`, `HERALD_BOUNCE_SECRET`): each email's envelope
sender is `bounces+<token>@<domain>`, so a bounce or complaint that arrives later names the
delivery it is about.

The token is the first 80 bits of the delivery key (hex) and a 48-bit HMAC-SHA256 tag over them
(hex): 32 characters, lower case only (some servers fold the case of local parts), so the whole
local part stays far below RFC 5321's 64 characters. A forged bounce would have to guess the
tag, one SMTP transaction per guess. The From header is never touched.
"""

from __future__ import annotations

import hashlib
import hmac
import re

PREFIX_CHARS = 20  # of the delivery key: 80 bits
TAG_CHARS = 12  # of the HMAC-SHA256 hex digest: 48 bits
LOCAL_PREFIX = "bounces+"
_TOKEN = re.compile(rf"[0-9a-f]{{{PREFIX_CHARS + TAG_CHARS}}}")


class ReturnPath:
    def __init__(self, domain: str, secret: bytes) -> None:
        if not secret:
            raise ValueError("the bounce secret must not be empty")
        self.domain = domain.lower()
        self._secret = secret

    def _tag(self, prefix: str) -> str:
        return hmac.new(self._secret, prefix.encode("ascii"), hashlib.sha256).hexdigest()[
            :TAG_CHARS
        ]

    def token(self, delivery_key: str) -> str:
        prefix = delivery_key[:PREFIX_CHARS].lower()
        return prefix + self._tag(prefix)

    def address(self, delivery_key: str) -> str:
        """The envelope sender (MAIL FROM) of this delivery's email."""
        return f"{LOCAL_PREFIX}{self.token(delivery_key)}@{self.domain}"

    def is_ours(self, address: str) -> bool:
        """Whether an address is on the bounce domain (what the bounce listener accepts)."""
        _, at, domain = address.rpartition("@")
        return bool(at) and domain.lower().rstrip(".") == self.domain

    def delivery_prefix(self, address: str) -> str | None:
        """The delivery key prefix a return-path address names, or None unless the address is
        on the bounce domain and its token's tag is right."""
        local, at, domain = address.strip().strip("<>").rpartition("@")
        if not at or domain.lower().rstrip(".") != self.domain:
            return None
        local = local.lower()
        if not local.startswith(LOCAL_PREFIX):
            return None
        token = local[len(LOCAL_PREFIX) :]
        if _TOKEN.fullmatch(token) is None:
            return None
        prefix, tag = token[:PREFIX_CHARS], token[PREFIX_CHARS:]
        if not hmac.compare_digest(tag, self._tag(prefix)):
            return None
        return prefix
