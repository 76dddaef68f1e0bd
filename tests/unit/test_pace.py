"""The SMTP pace (senders/pace.py) with a fake clock: the rate is honoured, throttling halves
it down to a floor, and it recovers additively."""

from __future__ import annotations

import asyncio

import pytest

from herald.senders.pace import Pace, is_throttling


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class Recorder:
    def __init__(self) -> None:
        self.rates: list[float] = []
        self.throttles: list[int | None] = []
        self.waits: list[float] = []

    def smtp_rate_changed(self, rate: float) -> None:
        self.rates.append(rate)

    def smtp_throttled(self, code: int | None) -> None:
        self.throttles.append(code)

    def smtp_token_waited(self, seconds: float) -> None:
        self.waits.append(seconds)


def pace(max_rate: float | None, clock: FakeClock, **kwargs: object) -> tuple[Pace, Recorder]:
    recorder = Recorder()
    return Pace(max_rate, observer=recorder, clock=clock, sleep=clock.sleep, **kwargs), recorder  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (421, "4.7.0 Try again later, closing connection", True),
        (421, "Service not available", True),
        (451, "4.7.1 Please try again later", True),
        (451, "4.3.0 Local error in processing", False),
        (454, "4.7.0 Throttling failure: Maximum sending rate exceeded.", True),
        (454, "4.7.0 Temporary authentication failure", True),
        (454, "4.3.0 TLS not available", False),
        (452, "4.2.2 Mailbox full", False),
        (450, "Throttling failure: Daily message quota exceeded.", True),
        (554, "5.7.1 rejected", False),
    ],
)
def test_which_replies_mean_slow_down(code: int, message: str, expected: bool) -> None:
    assert is_throttling(code, message) is expected


async def test_the_configured_rate_is_honoured() -> None:
    clock = FakeClock()
    bucket, recorder = pace(10.0, clock)
    start = clock.now
    for _ in range(101):
        await bucket.acquire()
    # A full bucket (one token: a tenth of a second) goes at once, the other 100 at 10 a second.
    assert clock.now - start == pytest.approx(10.0, rel=0.01)
    assert recorder.waits and max(recorder.waits) <= 0.1 + 1e-9


async def test_unlimited_never_waits() -> None:
    clock = FakeClock()
    bucket, recorder = pace(None, clock)
    for _ in range(1000):
        await bucket.acquire()
    assert clock.now == 1000.0
    assert recorder.waits == []
    assert bucket.current_rate == 0.0


async def test_throttling_halves_the_rate_down_to_a_floor() -> None:
    clock = FakeClock()
    bucket, recorder = pace(20.0, clock)
    bucket.throttled(454)
    assert bucket.current_rate == pytest.approx(10.0)
    bucket.throttled(421)
    assert bucket.current_rate == pytest.approx(5.0)
    for _ in range(10):
        bucket.throttled(454)
    assert bucket.current_rate == pytest.approx(1.0)  # the floor: 1/20 of the configured rate
    assert recorder.throttles == [454, 421] + [454] * 10


async def test_the_floor_is_never_below_a_tenth_per_second() -> None:
    clock = FakeClock()
    bucket, _ = pace(1.0, clock)
    for _ in range(20):
        bucket.throttled(454)
    assert bucket.current_rate == pytest.approx(0.1)


async def test_the_rate_recovers_additively_to_the_configured_rate() -> None:
    clock = FakeClock()
    bucket, recorder = pace(20.0, clock, recovery_seconds=10.0)
    bucket.throttled(454)
    assert bucket.current_rate == pytest.approx(10.0)
    clock.now += 2.0  # 2 s of 2/s steps
    await bucket.acquire()
    assert bucket.current_rate == pytest.approx(14.0)
    clock.now += 100.0
    await bucket.acquire()
    assert bucket.current_rate == pytest.approx(20.0)  # never above the configured rate
    assert recorder.rates[-1] == pytest.approx(20.0)


async def test_the_halved_rate_is_what_sends_get() -> None:
    clock = FakeClock()
    bucket, _ = pace(10.0, clock, recovery_seconds=1e9)  # no recovery in this test
    for _ in range(10):  # drain the bucket
        await bucket.acquire()
    bucket.throttled(454)
    start = clock.now
    for _ in range(50):
        await bucket.acquire()
    assert clock.now - start == pytest.approx(10.0, rel=0.02)  # 50 at 5 a second


async def test_throttling_engages_an_unlimited_pace_from_the_observed_rate() -> None:
    clock = FakeClock()
    bucket, recorder = pace(None, clock, recovery_seconds=10.0)
    for _ in range(50):  # 50 sends in the last second: observed 10/s over the 5 s window
        await bucket.acquire()
        clock.now += 0.02
    bucket.throttled(454)
    assert bucket.engaged
    assert bucket.current_rate == pytest.approx(5.0)
    assert recorder.throttles == [454]
    start = clock.now
    for _ in range(10):
        await bucket.acquire()
    assert clock.now - start > 1.0  # it really waits now
    clock.now += 100.0  # recovered past twice the observed rate: unlimited again
    await bucket.acquire()
    assert not bucket.engaged
    assert bucket.current_rate == 0.0
    assert recorder.rates[-1] == 0.0


async def test_waiting_sends_are_served_in_order() -> None:
    clock = FakeClock()
    bucket, _ = pace(2.0, clock)
    order: list[int] = []

    async def send(index: int) -> None:
        await bucket.acquire()
        order.append(index)

    await asyncio.gather(*(send(index) for index in range(8)))
    assert order == list(range(8))


def test_a_non_positive_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        Pace(0.0)
