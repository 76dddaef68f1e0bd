"""NOTIFICATIONS.md section 5: the threshold rules, pure and with the ledger (SQLite)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from herald.catalog.thresholds import OVERSUBSCRIPTION, USAGE, evaluate, usage_percent
from herald.ledger.schedules import ScheduleStore
from herald.ledger.store import SqlLedger
from herald.schemas.examples import load_example
from herald.service.metrics import Metrics
from herald.workflow.thresholds import ThresholdAlerts
from tests import support

RECEIVED = datetime(2025, 6, 14, 12, 5, tzinfo=UTC)


def report(
    peak: int,
    capacity: int,
    *,
    period: str = "2025-06-01T00:00:00Z",
    ends: str = "2025-07-01T00:00:00Z",
) -> dict[str, Any]:
    document = copy.deepcopy(load_example("interop.teams.usage_reported"))
    document["id"] = str(uuid.uuid4())
    document["data"].update(peak_concurrent_calls=peak, licensed_capacity=capacity)
    document["data"]["billing_period"] = {"starts_at": period, "ends_at": ends}
    return document


def decide(peak: int, capacity: int, fired: frozenset[str] = frozenset(), **kw: Any) -> Any:
    return evaluate(support.event_of(report(peak, capacity, **kw)).data, RECEIVED, fired)


@pytest.mark.parametrize(
    ("peak", "capacity", "fires"),
    [
        (8, 10, (USAGE,)),  # exactly 80 %
        (7, 10, ()),  # 70 %
        (10, 10, (USAGE,)),  # exactly 100 % is not over
        (11, 10, (OVERSUBSCRIPTION,)),
        (9, 9, ()),  # fewer than 10 licenses: no usage alert
        (10, 9, (OVERSUBSCRIPTION,)),  # oversubscription at any capacity
        (1, 0, (OVERSUBSCRIPTION,)),  # even 0
        (0, 0, ()),
        (16, 20, (USAGE,)),
        (15, 20, ()),  # 75 %
    ],
)
def test_rules_1_and_2_with_integer_arithmetic(
    peak: int, capacity: int, fires: tuple[str, ...]
) -> None:
    assert decide(peak, capacity).fire == fires


def test_rule4_oversubscription_suppresses_an_unfired_usage_alert() -> None:
    decision = decide(23, 20)
    assert (decision.fire, decision.suppress) == ((OVERSUBSCRIPTION,), (USAGE,))
    later = decide(23, 20, frozenset({USAGE}))
    assert (later.fire, later.suppress) == ((OVERSUBSCRIPTION,), ())


def test_rule3_a_fired_threshold_never_fires_again_for_the_period() -> None:
    assert decide(17, 20, frozenset({USAGE})).fire == ()
    assert decide(23, 20, frozenset({USAGE, OVERSUBSCRIPTION})).fire == ()


def test_rule5_usage_percent_is_floored() -> None:
    assert usage_percent(17, 20) == 85
    assert usage_percent(2, 3) == 66
    assert decide(17, 20).usage_percent == 85


def test_rule7_reports_of_a_period_ended_over_48_hours_ago_are_stale() -> None:
    assert decide(17, 20, ends="2025-06-12T12:04:00Z").stale
    assert not decide(17, 20, ends="2025-06-12T12:06:00Z").stale


@pytest.fixture
async def alerts(tmp_path: Path) -> AsyncIterator[ThresholdAlerts]:
    ledger = await SqlLedger.open(f"sqlite:///{tmp_path}/ledger.db")
    yield ThresholdAlerts(
        catalog=support.catalog(),
        store=ScheduleStore(ledger),
        directory={},
        observer=Metrics(),
        clock=lambda: RECEIVED,
    )
    await ledger.close()


async def fire(alerts: ThresholdAlerts, document: dict[str, Any]) -> list[tuple[str, str]]:
    deliveries = await alerts.deliveries(support.event_of(document))
    return sorted((d.spec.id, d.recipient.email) for d in deliveries)


async def test_85_percent_twice_alerts_once(alerts: ThresholdAlerts) -> None:
    first = await fire(alerts, report(17, 20))
    assert [name for name, _ in first] == [USAGE, USAGE]  # customer and partner contacts
    assert await fire(alerts, report(18, 20)) == []


async def test_a_redelivered_report_returns_its_alert_again(alerts: ThresholdAlerts) -> None:
    document = report(17, 20)
    first = await fire(alerts, document)
    assert first
    assert await fire(alerts, document) == first  # same keys: the ledger drops what was sent


async def test_oversubscription_after_usage_fires_once(alerts: ThresholdAlerts) -> None:
    assert {n for n, _ in await fire(alerts, report(17, 20))} == {USAGE}
    assert {n for n, _ in await fire(alerts, report(23, 20))} == {OVERSUBSCRIPTION}
    assert await fire(alerts, report(25, 20)) == []


async def test_usage_is_not_sent_after_a_suppressing_oversubscription(
    alerts: ThresholdAlerts,
) -> None:
    assert {n for n, _ in await fire(alerts, report(23, 20))} == {OVERSUBSCRIPTION}
    assert await fire(alerts, report(17, 20)) == []


async def test_capacity_change_does_not_rearm_but_a_new_period_does(
    alerts: ThresholdAlerts,
) -> None:
    assert await fire(alerts, report(17, 20))
    assert await fire(alerts, report(40, 50)) == []  # 80 % of a bigger capacity, same period
    july = report(17, 20, period="2025-07-01T00:00:00Z", ends="2025-08-01T00:00:00Z")
    assert {n for n, _ in await fire(alerts, july)} == {USAGE}


async def test_alert_carries_the_usage_percent_of_the_firing_report(
    alerts: ThresholdAlerts,
) -> None:
    deliveries = await alerts.deliveries(support.event_of(report(17, 20)))
    assert {d.extras["usage_percent"] for d in deliveries} == {85}


async def test_stale_report_fires_nothing_and_is_counted(alerts: ThresholdAlerts) -> None:
    assert await fire(alerts, report(23, 20, ends="2025-06-01T00:00:00Z")) == []
    assert isinstance(alerts.observer, Metrics)
    value = alerts.observer.registry.get_sample_value(
        "herald_threshold_alerts_total", {"notification": OVERSUBSCRIPTION, "outcome": "stale"}
    )
    assert value == 1
