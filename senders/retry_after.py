"""`Retry-After` of an HTTP answer (RFC 9110 section 10.2.3) as seconds to wait: delta-seconds
or an HTTP-date. Bounded: a value that cannot be read, or one past Herald's 24-hour retry
window, is ignored (the usual backoff applies); a date in the past means now."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# A receiver asking for more than the whole retry window is not taken at its word.
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0

_DELTA_SECONDS = re.compile(r"[0-9]{1,10}")


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds from `now` (aware) the answer asks to wait, or None when absent or unusable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(int(text))
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" in an RFC 5322 date: UTC by convention
            when = when.replace(tzinfo=UTC)
        seconds = max(0.0, (when - now).total_seconds())
    return None if seconds > MAX_RETRY_AFTER_SECONDS else seconds
