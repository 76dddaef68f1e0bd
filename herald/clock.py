"""The one wall clock of Herald: timezone-aware UTC, and the type of a clock a component is
given (tests inject their own). Ground floor: imports nothing of Herald."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
