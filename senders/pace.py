"""The relay's pace: a token bucket shared by the SMTP pool, with an AIMD controller.

`HERALD_SMTP_MAX_RATE` caps sends per second per process. A "slow down" reply from the relay
(421; 451 4.7.x; 454 4.7.0; any reply whose text says `Throttling`, as Amazon SES answers)
halves the current rate (multiplicative decrease, never below a floor), and every second of
sending without such a reply adds back a step of the configured rate (additive increase) until
the configured rate is reached again.

Without a configured rate the bucket is disengaged: `acquire()` returns at once and costs one
attribute test. A throttling reply engages it anyway, starting from half the rate observed over
the last few seconds (the relay told us we were too fast, so "unlimited" is no longer true); it
recovers additively and, once it has climbed back to well above the observed pace, disengages
again. This is the documented choice for an unconfigured relay.

Hand-written rather than aiolimiter (1.3, the well-kept asyncio limiter on PyPI): aiolimiter is a
leaky bucket whose rate is fixed at construction (no supported way to change it at run time,
which AIMD needs), it has no notion of an injectable clock for deterministic tests, and it would
need a wrapper for the wait-time observation anyway. The bucket below is ~100 lines.

A waiting send holds no SMTP connection and nothing else in memory but its coroutine; how many
can wait is bounded by the consumers' prefetch (unacked deliveries), so backpressure reaches the
broker without an extra queue here.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

# 421 service not available (closing), 451 4.7.x, 454 4.7.0; SES says "Throttling".
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


def is_throttling(code: int | None, message: str) -> bool:
    """Whether an SMTP reply means "slow down"."""
    if "throttling" in message.lower():
        return True
    if code == 421:
        return True
    if code not in (451, 454):
        return False
    match = _ENHANCED.match(message)
    if match is None:
        return False
    klass, subject, detail = match.groups()
    if code == 451:
        return klass == "4" and subject == "7"
    return (klass, subject, detail) == ("4", "7", "0")


class PaceObserver(Protocol):
    """What the pace reports; service/metrics.py implements it with Prometheus metrics."""

    def smtp_rate_changed(self, rate: float) -> None:
        """The current rate (0 while unlimited)."""

    def smtp_throttled(self, code: int | None) -> None:
        """The relay answered a throttling reply with this code."""

    def smtp_token_waited(self, seconds: float) -> None:
        """A send waited this long for a token (only sends that had to wait)."""


class NullPaceObserver:
    def smtp_rate_changed(self, rate: float) -> None:
        pass

    def smtp_throttled(self, code: int | None) -> None:
        pass

    def smtp_token_waited(self, seconds: float) -> None:
        pass


class Pace:
    """A token bucket whose rate follows AIMD. Its capacity is a tenth of a second of the current
    rate, at least one token: sends are spread out rather than sent in bursts (providers such
    as SES count per second). Thread-unsafe; one per event loop, shared by the whole SMTP pool."""

    OBSERVE_WINDOW = 5.0  # seconds of recent sends used to estimate the observed rate
    ABSOLUTE_FLOOR = 0.1  # per second

    def __init__(
        self,
        max_rate: float | None = None,
        *,
        observer: PaceObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        recovery_seconds: float = 30.0,
    ) -> None:
        if max_rate is not None and max_rate <= 0:
            raise ValueError("max_rate must be positive")
        self.max_rate = max_rate
        self._observer = observer if observer is not None else NullPaceObserver()
        self._clock = clock
        self._sleep = sleep
        # Additive step per second: from the floor back to the ceiling in about this long.
        self._recovery_seconds = recovery_seconds
        self._ceiling: float | None = max_rate
        self._rate: float | None = max_rate  # None: disengaged (unlimited)
        self._tokens = self._capacity() if max_rate else 0.0
        self._updated = clock()
        self._recent: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._observer.smtp_rate_changed(self.current_rate)

    @property
    def current_rate(self) -> float:
        """The rate in force now (0 when unlimited)."""
        return self._rate or 0.0

    @property
    def engaged(self) -> bool:
        return self._rate is not None

    def _capacity(self) -> float:
        return max(1.0, (self._rate or 0.0) / 10)

    def _floor(self) -> float:
        ceiling = self._ceiling or self.ABSOLUTE_FLOOR
        return max(self.ABSOLUTE_FLOOR, ceiling / 20)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        if self._rate is None:
            return
        # Additive increase: a step per second of elapsed time since the last update.
        assert self._ceiling is not None
        if self._rate < self._ceiling:
            step = self._ceiling / self._recovery_seconds
            self._rate = min(self._ceiling, self._rate + step * elapsed)
            if self.max_rate is None and self._rate >= self._ceiling:
                self._disengage()
                return
            self._observer.smtp_rate_changed(self.current_rate)
        self._tokens = min(self._capacity(), self._tokens + self._rate * elapsed)

    def _disengage(self) -> None:
        self._rate = None
        self._ceiling = None
        self._tokens = 0.0
        self._observer.smtp_rate_changed(0.0)

    async def acquire(self) -> None:
        """Wait for a token (returns at once while unlimited)."""
        if self._rate is None:
            # Unlimited: only remember when, for the observed rate a throttle starts from.
            recent = self._recent
            now = self._clock()
            recent.append(now)
            while recent and recent[0] < now - self.OBSERVE_WINDOW:
                recent.popleft()
            return
        started = self._clock()
        async with self._lock:  # FIFO: waiting sends are served in arrival order
            while True:
                now = self._clock()
                self._refill(now)
                if self._rate is None:
                    break
                if self._tokens >= 1.0 - 1e-9:  # float rounding of the refill
                    self._tokens = max(0.0, self._tokens - 1.0)
                    break
                await self._sleep(max(1e-4, (1.0 - self._tokens) / self._rate))
        waited = self._clock() - started
        if waited > 0:
            self._observer.smtp_token_waited(waited)

    def throttled(self, code: int | None) -> None:
        """The relay said "slow down": halve the current rate (not below the floor)."""
        self._observer.smtp_throttled(code)
        now = self._clock()
        if self._rate is not None:
            self._refill(now)  # may disengage an unconfigured pace that had fully recovered
        if self._rate is None:
            recent = self._recent
            while recent and recent[0] < now - self.OBSERVE_WINDOW:
                recent.popleft()
            observed = len(recent) / self.OBSERVE_WINDOW
            # The ceiling it recovers to: twice the pace that drew the throttle, then unlimited.
            self._ceiling = max(2 * observed, 2 * self.ABSOLUTE_FLOOR)
            self._rate = max(observed, self.ABSOLUTE_FLOOR)
            self._tokens = 0.0
            self._updated = now
        self._rate = max(self._floor(), self._rate / 2)
        self._tokens = min(self._tokens, self._capacity())
        self._observer.smtp_rate_changed(self.current_rate)
