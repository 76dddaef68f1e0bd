"""Which SMTP refusals mean the address is bad (issue 18, section 2): a 5xx to RCPT TO or after
DATA whose RFC 3463 enhanced status code is 5.1.1 (no such mailbox), 5.1.2 (bad domain), 5.1.3
(bad address syntax) or 5.1.10 (null MX), or a bare 550 after RCPT. Policy and content
rejections (5.7.x, 5.6.x) and full mailboxes (4.2.2, 5.2.2) are not: they are failures to look
at, never a reason to stop mailing the address."""

from __future__ import annotations

import re

_ENHANCED = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
BAD_ADDRESS_CODES = frozenset({"5.1.1", "5.1.2", "5.1.3", "5.1.10"})


def enhanced_code(reply: str | None) -> str | None:
    """The enhanced status code a reply's text starts with (`5.1.1`), if any."""
    if not reply:
        return None
    match = _ENHANCED.match(reply)
    if match is None:
        return None
    return ".".join(str(int(part)) for part in match.groups())


def is_hard_bounce(code: int | None, enhanced: str | None, stage: str | None) -> bool:
    """Whether a refusal proves the address does not exist (adds a `hard_bounce`)."""
    if code is None or not 500 <= code < 600 or stage not in ("rcpt", "data"):
        return False
    if enhanced is not None:
        return enhanced in BAD_ADDRESS_CODES
    return code == 550 and stage == "rcpt"
