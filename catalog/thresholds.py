"""The Teams usage threshold rules of NOTIFICATIONS.md section 5, as a pure function.

C = licensed_capacity, P = peak_concurrent_calls, K = (subscription_id, billing_period.starts_at).
Integer arithmetic only. Each threshold fires at most once per K; the ledger remembers which.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from herald.schemas.interop import TeamsUsageReported

USAGE = "teams_cvi_usage_threshold"
OVERSUBSCRIPTION = "teams_cvi_oversubscription"
THRESHOLDS = (USAGE, OVERSUBSCRIPTION)
STALE_AFTER = timedelta(hours=48)
MIN_CAPACITY = 10


@dataclass(frozen=True, slots=True)
class Decision:
    stale: bool = False
    fire: tuple[str, ...] = ()  # send these (not fired yet for K)
    suppress: tuple[str, ...] = ()  # record as fired for K without sending (rule 4)
    usage_percent: int = 0


def usage_percent(peak: int, capacity: int) -> int:
    """Rule 5: floor(100 x P / C); 0 when there is no capacity to divide by."""
    return (100 * peak) // capacity if capacity > 0 else 0


def evaluate(
    data: TeamsUsageReported, received_at: datetime, already_fired: frozenset[str]
) -> Decision:
    if data.billing_period.ends_at < received_at - STALE_AFTER:
        return Decision(stale=True)  # rule 7
    capacity = data.licensed_capacity
    peak = data.peak_concurrent_calls
    over = peak > capacity  # rule 1
    usage = capacity >= MIN_CAPACITY and 100 * peak >= 80 * capacity and peak <= capacity  # 2
    fire: list[str] = []
    suppress: list[str] = []
    if over:
        if OVERSUBSCRIPTION not in already_fired:
            fire.append(OVERSUBSCRIPTION)
        if USAGE not in already_fired:
            suppress.append(USAGE)  # rule 4: oversubscription takes precedence
    elif usage and USAGE not in already_fired:
        fire.append(USAGE)
    return Decision(
        fire=tuple(fire), suppress=tuple(suppress), usage_percent=usage_percent(peak, capacity)
    )
