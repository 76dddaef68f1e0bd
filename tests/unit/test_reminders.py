"""Every rule of NOTIFICATIONS.md 4.2 with an injected clock: the scheduler and the ledger are
real (SQLite), the sender is a fake. No test waits for a date."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from herald.catalog.reminders import Row, still_due
from herald.ledger.schedules import ScheduleStore
from herald.ledger.store import SqlLedger
from herald.schemas.examples import load_example
from herald.schemas.registry import EVENT_SCHEMAS
from herald.senders.memory import MemorySender
from herald.service.metrics import Metrics
from herald.workflow.pipeline import Pipeline
from herald.workflow.reminders import ReminderScheduler
from tests import support

PLAN_ID = "plan-88120"
RENEWAL_RECIPIENTS = ["sara.holm@operator.example"]  # reseller under a distributor (3.2)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def set(self, text: str) -> None:
        self.now = datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class World:
    clock: Clock
    scheduler: ReminderScheduler
    pipeline: Pipeline
    sender: MemorySender
    store: ScheduleStore
    metrics: Metrics

    async def publish(self, document: dict[str, Any]) -> None:
        await self.scheduler.apply(support.event_of(document))

    async def run(self, at: str | None = None) -> list[str]:
        """One scheduler pass (at `at`, if given); returns the subjects sent by it."""
        if at is not None:
            self.clock.set(at)
        before = len(self.sender.sent)
        await self.scheduler.run_pass(self.pipeline.deliver)
        return [email.subject for email in self.sender.sent[before:]]

    async def statuses(self, notification: str = "plan_expiry_reminder") -> dict[int, str]:
        rows = await self.store.listing()
        return {row.offset: row.status for row in rows if row.notification == notification}

    def counted(self, outcome: str, notification: str = "plan_expiry_reminder") -> float:
        value = self.metrics.registry.get_sample_value(
            "herald_reminders_total", {"notification": notification, "outcome": outcome}
        )
        return value or 0.0


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = Clock(datetime(2026, 1, 1, 9, 0, tzinfo=UTC))
    ledger = await SqlLedger.open(f"sqlite:///{tmp_path}/ledger.db", clock=clock)
    metrics = Metrics()
    sender = MemorySender()
    store = ScheduleStore(ledger)
    pipeline = Pipeline(
        catalog=support.catalog(),
        directory={},
        renderer=support.renderer(),
        sender=sender,
        ledger=ledger,
        observer=metrics,
    )
    scheduler = ReminderScheduler(
        catalog=support.catalog(),
        store=store,
        directory={},
        schemas=EVENT_SCHEMAS,
        observer=metrics,
        send_time=time(8, 0),
        clock=clock,
    )
    yield World(clock, scheduler, pipeline, sender, store, metrics)
    await ledger.close()


def plan_event(
    event_type: str = "subscriptions.plan.created",
    *,
    at: str = "2026-01-01T09:00:00Z",
    expires: str = "2026-03-31T00:00:00Z",
    term: str = "2025-03-31T00:00:00Z",
    decision: str = "none",
) -> dict[str, Any]:
    document = copy.deepcopy(load_example("subscriptions.plan.created"))
    document.update(id=str(uuid.uuid4()), type=event_type, time=at)
    data = document["data"]
    data["plan"].update(expires_at=expires, term_started_at=term, renewal_decision=decision)
    actor = {"id": "usr-1", "email": "jonas@bluepeak.example", "name": "Jonas Berg"}
    if event_type in (
        "subscriptions.plan.renewal_confirmed",
        "subscriptions.plan.expiry_confirmed",
    ):
        data["actor"] = actor
    if event_type == "subscriptions.plan.renewed":
        data["previous_expires_at"] = term
    if event_type == "subscriptions.plan.expired":
        data["reason"] = "unconfirmed_renewal"
    return document


# Rule 1: fire dates and the send time -------------------------------------------------------


async def test_rule1_fires_on_the_fire_date_from_the_send_time(world: World) -> None:
    await world.publish(plan_event(expires="2026-03-31T10:00:00Z"))
    assert await world.statuses() == {45: "pending", 30: "pending", 15: "pending", 3: "pending"}
    assert await world.run("2026-03-01T07:59:00") == []  # 30 days before, before 08:00
    subjects = await world.run("2026-03-01T08:00:00")
    assert subjects == ["Northwind Health license plan expires in 30 days"]
    assert [e.envelope_to for e in world.sender.sent] == RENEWAL_RECIPIENTS
    assert await world.run("2026-03-01T23:59:00") == []  # at most once
    assert (await world.statuses())[30] == "sent"


async def test_rule1_fire_date_is_the_utc_calendar_date(world: World) -> None:
    # 2026-03-31T01:30+02:00 is 2026-03-30 in UTC: the 3-day reminder fires on 27 March.
    await world.publish(plan_event(expires="2026-03-31T01:30:00+02:00"))
    rows = {row.offset: row.fire_date for row in await world.store.listing()}
    assert rows[3] == date(2026, 3, 27)


# Rule 2: never late -------------------------------------------------------------------------


async def test_rule2_a_reminder_not_sent_on_its_day_is_missed_not_sent_late(world: World) -> None:
    await world.publish(plan_event(expires="2026-03-31T00:00:00Z"))
    # The service was down on 1 March (the 30-day fire date) and comes back on 2 March.
    assert await world.run("2026-03-02T09:00:00") == []
    assert (await world.statuses())[30] == "missed"
    assert world.counted("missed") == 2  # the 45-day one (14 Feb) and the 30-day one


async def test_rule2_an_event_arriving_after_the_fire_date_counts_missed(world: World) -> None:
    world.clock.set("2026-03-20T09:00:00")  # 11 days before expiry
    await world.publish(plan_event(at="2026-03-20T09:00:00Z", expires="2026-03-31T00:00:00Z"))
    assert await world.statuses() == {45: "missed", 30: "missed", 15: "missed", 3: "pending"}
    assert world.counted("missed") == 3


async def test_rule2_scheduled_after_send_time_on_the_fire_date_is_sent_at_once(
    world: World,
) -> None:
    world.clock.set("2026-03-28T15:00:00")  # the 3-day fire date, after 08:00
    await world.publish(plan_event(at="2026-03-28T14:59:00Z", expires="2026-03-31T00:00:00Z"))
    assert await world.run() == ["Northwind Health license plan expires in 3 days"]


# Rules 3 and 4: arming and date changes -----------------------------------------------------


async def test_rule4_date_change_moves_pending_and_never_resends(world: World) -> None:
    await world.publish(plan_event(expires="2026-03-31T00:00:00Z"))
    assert await world.run("2026-03-16T08:00:00")  # the 15-day reminder is sent
    # Monthly to annual in the same term: the expiry moves a year on.
    await world.publish(
        plan_event(
            "subscriptions.plan.changed", at="2026-03-17T10:00:00Z", expires="2027-03-31T00:00:00Z"
        )
    )
    statuses = await world.statuses()
    assert statuses == {45: "pending", 30: "pending", 15: "sent", 3: "pending"}
    rows = {row.offset: row.fire_date for row in await world.store.listing()}
    assert rows[45] == date(2027, 2, 14)
    assert await world.run("2027-03-16T08:00:00") == []  # the 15-day one was sent this term


async def test_rule4_unsent_offsets_moved_into_the_past_are_dropped(world: World) -> None:
    world.clock.set("2026-01-10T09:00:00")
    await world.publish(plan_event(at="2026-01-10T09:00:00Z", expires="2026-03-31T00:00:00Z"))
    await world.publish(
        plan_event(
            "subscriptions.plan.changed", at="2026-01-11T09:00:00Z", expires="2026-01-20T00:00:00Z"
        )
    )
    assert await world.statuses() == {45: "missed", 30: "missed", 15: "missed", 3: "pending"}


# Rule 5: a new cycle ------------------------------------------------------------------------


async def test_rule5_renewal_starts_a_fresh_set(world: World) -> None:
    await world.publish(plan_event(expires="2026-03-31T00:00:00Z"))
    assert await world.run("2026-03-28T08:00:00")  # 3 days before: sent in the old term
    await world.publish(
        plan_event(
            "subscriptions.plan.renewed",
            at="2026-03-31T00:05:00Z",
            term="2026-03-31T00:00:00Z",
            expires="2027-03-31T00:00:00Z",
        )
    )
    rows = await world.store.listing()
    new_term = [row for row in rows if row.cycle_key.startswith("2026-03-31")]
    assert sorted(row.offset for row in new_term if row.status == "pending") == [3, 15, 30, 45]
    assert await world.run("2027-03-28T08:00:00") == [
        "Northwind Health license plan expires in 3 days"
    ]


async def test_rule5_old_cycle_pending_reminders_are_cancelled(world: World) -> None:
    await world.publish(plan_event(expires="2026-03-31T00:00:00Z"))
    await world.publish(
        plan_event(
            "subscriptions.plan.renewed",
            at="2026-01-02T00:00:00Z",
            term="2026-01-02T00:00:00Z",
            expires="2027-01-02T00:00:00Z",
        )
    )
    old = [r for r in await world.store.listing() if r.cycle_key.startswith("2025-03-31")]
    assert {row.status for row in old} == {"cancelled"}
    assert world.counted("cancelled") == 4


# Rule 6: disarm and re-arm ------------------------------------------------------------------


async def test_rule6_confirmed_renewal_disarms_and_reset_rearms(world: World) -> None:
    await world.publish(plan_event(expires="2026-03-31T00:00:00Z"))
    await world.publish(
        plan_event(
            "subscriptions.plan.renewal_confirmed", at="2026-01-02T09:00:00Z", decision="renew"
        )
    )
    assert set((await world.statuses()).values()) == {"cancelled"}
    assert await world.run("2026-03-01T08:00:00") == []
    world.clock.set("2026-03-05T09:00:00")
    await world.publish(
        plan_event("subscriptions.plan.changed", at="2026-03-05T09:00:00Z", decision="none")
    )
    # Re-armed in the same cycle: only offsets still ahead become pending again.
    assert await world.statuses() == {45: "cancelled", 30: "cancelled", 15: "pending", 3: "pending"}


async def test_rule6_auto_renew_switch_arms_the_other_series(world: World) -> None:
    document = load_example("subscriptions.subscription.created")
    subscription = document["data"]["subscription"]
    subscription.update(
        auto_renew=True, term_started_at="2025-06-01T00:00:00Z", term_ends_at="2026-06-01T00:00:00Z"
    )
    document["time"] = "2026-01-01T09:00:00Z"
    await world.publish(document)
    changed = copy.deepcopy(load_example("subscriptions.subscription.changed"))
    changed["data"]["customer"] = document["data"]["customer"]
    changed["data"]["partner"] = document["data"]["partner"]
    changed["data"].pop("distributor", None)
    if "distributor" in document["data"]:
        changed["data"]["distributor"] = document["data"]["distributor"]
    changed["data"]["subscription"] = {**subscription, "auto_renew": False}
    changed["time"] = "2026-02-01T09:00:00Z"
    await world.publish(changed)
    auto = await world.statuses("subscription_auto_renewal_reminder")
    expiry = await world.statuses("subscription_expiry_reminder")
    assert set(auto.values()) == {"cancelled"}
    assert expiry == {30: "pending", 7: "pending", 1: "pending"}


# Rules 7 and 8: ending and out-of-order events ---------------------------------------------


async def test_rule7_ending_event_cancels_and_an_older_arming_cannot_rearm(world: World) -> None:
    await world.publish(plan_event(at="2026-01-01T09:00:00Z", expires="2026-03-31T00:00:00Z"))
    await world.publish(plan_event("subscriptions.plan.expired", at="2026-01-05T09:00:00Z"))
    assert set((await world.statuses()).values()) == {"cancelled"}
    await world.publish(plan_event("subscriptions.plan.changed", at="2026-01-03T09:00:00Z"))
    assert set((await world.statuses()).values()) == {"cancelled"}


async def test_rule7_canceled_order_ends_the_plan_it_would_have_created(world: World) -> None:
    await world.publish(plan_event(expires="2026-03-31T00:00:00Z"))
    canceled = load_example("orders.order.canceled")
    canceled["time"] = "2026-01-02T09:00:00Z"
    canceled["data"]["order"]["lines"][0]["plan_id"] = PLAN_ID
    await world.publish(canceled)
    assert set((await world.statuses()).values()) == {"cancelled"}


async def test_rule8_an_older_event_changes_nothing(world: World) -> None:
    await world.publish(plan_event(at="2026-01-05T09:00:00Z", expires="2026-03-31T00:00:00Z"))
    await world.publish(
        plan_event(
            "subscriptions.plan.changed", at="2026-01-04T09:00:00Z", expires="2027-03-31T00:00:00Z"
        )
    )
    rows = {row.offset: row.fire_date for row in await world.store.listing()}
    assert rows[3] == date(2026, 3, 28)


# Rule 9: the check at fire time -------------------------------------------------------------


def test_rule9_still_due_checks_state_cycle_and_date() -> None:
    spec = support.catalog()["plan_expiry_reminder"]
    data = support.event_of(plan_event(expires="2026-03-31T00:00:00Z")).data
    cycle = "2025-03-31T00:00:00+00:00"
    row = Row("plan_expiry_reminder", PLAN_ID, cycle, 3, date(2026, 3, 28), "firing")
    today = date(2026, 3, 28)
    assert still_due(spec, row, data, ended=False, today=today)
    assert not still_due(spec, row, data, ended=True, today=today)
    assert not still_due(spec, row, data, ended=False, today=date(2026, 3, 29))
    other_cycle = Row(row.notification, PLAN_ID, "2024-03-31T00:00:00+00:00", 3, today, "firing")
    assert not still_due(spec, other_cycle, data, ended=False, today=today)
    renewed = support.event_of(
        plan_event("subscriptions.plan.renewal_confirmed", decision="renew")
    ).data
    assert not still_due(spec, row, renewed, ended=False, today=today)


# Rule 10: idempotency -----------------------------------------------------------------------


async def test_rule10_two_schedulers_fire_each_reminder_once(world: World) -> None:
    import asyncio

    await world.publish(plan_event(expires="2026-03-31T00:00:00Z"))
    world.clock.set("2026-03-28T08:00:00")
    other = ReminderScheduler(
        catalog=support.catalog(),
        store=world.store,
        directory={},
        schemas=EVENT_SCHEMAS,
        observer=world.metrics,
        clock=world.clock,
    )
    await asyncio.gather(
        world.scheduler.run_pass(world.pipeline.deliver), other.run_pass(world.pipeline.deliver)
    )
    await world.scheduler.run_pass(world.pipeline.deliver)
    assert [email.subject for email in world.sender.sent] == [
        "Northwind Health license plan expires in 3 days"
    ]


async def test_rule10_a_failed_send_is_retried_without_duplicates(world: World) -> None:
    from datetime import timedelta

    from herald.errors import TransientSendError

    await world.publish(plan_event(expires="2026-03-31T00:00:00Z"))
    world.sender.fail_next(TransientSendError("451 later", 451))
    assert await world.run("2026-03-28T08:00:00") == []
    assert (await world.statuses())[3] == "firing"
    world.clock.now += timedelta(minutes=2)
    assert await world.run() == ["Northwind Health license plan expires in 3 days"]
    assert (await world.statuses())[3] == "sent"


# Rule 11 and EVENTS.md 4.4 ------------------------------------------------------------------


async def test_rule11_nothing_is_scheduled_without_an_arming_event(world: World) -> None:
    await world.publish(plan_event("subscriptions.plan.expired"))
    assert await world.statuses() == {}
    assert await world.run("2026-03-28T08:00:00") == []


async def test_trial_extension_gives_a_fresh_set_for_the_new_end_date(world: World) -> None:
    started = load_example("subscriptions.trial.started")  # kind company
    started["time"] = "2026-01-01T09:00:00Z"
    started["data"]["trial"]["ends_at"] = "2026-02-15T00:00:00Z"
    await world.publish(started)
    extended = copy.deepcopy(started)
    extended.update(id="ext-1", type="subscriptions.trial.extended", time="2026-01-20T09:00:00Z")
    extended["data"]["trial"]["ends_at"] = "2026-03-15T00:00:00Z"
    extended["data"]["previous_ends_at"] = "2026-02-15T00:00:00Z"
    await world.publish(extended)
    rows = await world.store.listing()
    old = {r.offset: r.status for r in rows if r.cycle_key.startswith("2026-02-15")}
    new = {r.offset: r.status for r in rows if r.cycle_key.startswith("2026-03-15")}
    assert (old, new) == ({23: "cancelled", 7: "cancelled"}, {23: "pending", 7: "pending"})
    assert {r.notification for r in rows} == {"trial_reminder_company"}


async def test_stored_state_keeps_no_secret_link(world: World, tmp_path: Path) -> None:
    document = load_example("users.portal_account.created")
    await world.publish(document)
    async with world.store._ledger._engine.connect() as connection:
        from sqlalchemy import text

        stored = (await connection.execute(text("select data from entity_states"))).scalar_one()
    assert document["data"]["action_url"] not in stored
    assert "redacted.invalid" in stored


async def test_reminders_list_command_shows_each_status(world: World, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from herald.service.cli import app

    world.clock.set("2026-03-20T09:00:00")
    await world.publish(plan_event(at="2026-03-20T09:00:00Z", expires="2026-03-31T00:00:00Z"))
    import asyncio

    # The command runs its own event loop: run it in a thread, as from a shell.
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["reminders", "list", "--entity", PLAN_ID],
        env={"HERALD_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db", "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("missed") == 3
    assert result.output.count("pending") == 1
    assert "2026-03-28" in result.output
    other = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["reminders", "list", "--entity", "plan-none"],
        env={"HERALD_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db"},
    )
    assert "plan_expiry_reminder" not in other.output


async def test_reminders_list_as_json_with_whole_ids_in_80_columns(
    world: World, tmp_path: Path
) -> None:
    import asyncio
    import json
    import re

    from typer.testing import CliRunner

    from herald.service.cli import app

    world.clock.set("2026-03-20T09:00:00")
    await world.publish(plan_event(at="2026-03-20T09:00:00Z", expires="2026-03-31T00:00:00Z"))
    env = {"HERALD_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db", "COLUMNS": "80"}
    # The command runs its own event loop: run it in a thread, as from a shell.
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["reminders", "list", "--format", "json"], env=env
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)  # one document, nothing else on stdout
    assert {row["entity_id"] for row in rows} == {PLAN_ID}
    assert sorted(row["status"] for row in rows) == ["missed"] * 3 + ["pending"]
    for row in rows:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", row["fire_date"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", row["updated_at"])
    table = await asyncio.to_thread(CliRunner().invoke, app, ["reminders", "list"], env=env)
    assert table.exit_code == 0, table.output
    assert "…" not in table.stdout
    for row in rows:
        assert row["notification"] in table.stdout and PLAN_ID in table.stdout


async def test_an_event_arriving_while_a_reminder_fires_leaves_it_alone(world: World) -> None:
    await world.publish(plan_event(expires="2026-03-31T00:00:00Z"))
    world.clock.set("2026-03-28T08:00:00")
    (claimed,) = [r for r in await world.store.claim_due(date(2026, 3, 28), timedelta(minutes=3))]
    # The arming event is republished while the scheduler holds the 3-day reminder.
    await world.publish(plan_event("subscriptions.plan.changed", at="2026-03-28T08:00:01Z"))
    assert (await world.statuses())[3] == "firing"
    await world.store.finish(claimed.id, "sent")
    assert await world.run() == []
    assert (await world.statuses())[3] == "sent"
