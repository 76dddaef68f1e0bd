"""Reminders and threshold alerts on the real broker and SMTP server, with the real clock:
a reminder due today goes out within seconds (send time 00:00, 1 s scheduler interval)."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from herald.renderers.formatting import format_date
from herald.schemas.examples import load_example
from herald.service.app import Service, build_service
from herald.tools.preview import persons
from tests.conftest import SmtpServer
from tests.integration.conftest import Broker, metric, service_settings, wait_for_metric

pytestmark = pytest.mark.integration
HERALD = str(Path(sys.executable).parent / "herald")
RENEWAL_RECIPIENT = "sara.holm@operator.example"  # vendor account manager of plan.created


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "herald.yaml"
    path.write_text('reminders:\n  send_time_utc: "00:00"\n')
    return path


@pytest.fixture
async def scheduling_service(
    amqp_url: str, smtp_server: SmtpServer, tmp_path: Path, broker: Broker
) -> AsyncIterator[Service]:
    settings = service_settings(
        amqp_url, smtp_server, tmp_path, config=_config(tmp_path), scheduler_interval_seconds=1
    )
    herald = await build_service(settings)
    await herald.start()
    yield herald
    await herald.stop()


def plan_created(days_to_expiry: int, plan_id: str | None = None, **plan: Any) -> dict[str, Any]:
    document = copy.deepcopy(load_example("subscriptions.plan.created"))
    now = datetime.now(UTC)
    expires = (now + timedelta(days=days_to_expiry)).replace(hour=12, minute=0, second=0)
    document.update(id=str(uuid.uuid4()), time=now.isoformat())
    document["data"]["plan"].update(
        id=plan_id or f"plan-{uuid.uuid4().hex[:8]}",
        expires_at=expires.isoformat(),
        term_started_at=(expires - timedelta(days=365)).isoformat(),
        **plan,
    )
    return document


async def test_plan_three_days_from_expiry_gets_its_reminder_once(
    scheduling_service: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    document = plan_created(3)
    await broker.publish(document)
    (email,) = await smtp_server.wait_for(1)
    assert email.recipients == [RENEWAL_RECIPIENT]
    assert email.message["Subject"] == "Northwind Health license plan expires in 3 days"
    assert email.message["X-Herald-Notification"] == "plan_expiry_reminder"
    # Republishing the arming event (a new id) does not repeat it.
    again = copy.deepcopy(document)
    again["id"] = str(uuid.uuid4())
    await broker.publish(again)
    await wait_for_metric(
        scheduling_service, "herald_events_processed_total", 2, domain="subscriptions"
    )
    await asyncio.sleep(2.5)  # two more scheduler passes
    assert len(smtp_server.received) == 1
    sent = metric(
        scheduling_service,
        "herald_reminders_total",
        notification="plan_expiry_reminder",
        outcome="sent",
    )
    assert sent == 1


async def test_confirmed_renewal_cancels_pending_reminders(
    scheduling_service: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    document = plan_created(20, plan_id="plan-renew-1")
    await broker.publish(document)
    await wait_for_metric(
        scheduling_service, "herald_events_processed_total", 1, domain="subscriptions"
    )
    rows = await scheduling_service.reminders.store.listing("plan-renew-1")
    assert {row.offset: row.status for row in rows} == {
        45: "missed",
        30: "missed",
        15: "pending",
        3: "pending",
    }
    confirmed = copy.deepcopy(document)
    confirmed.update(
        id=str(uuid.uuid4()),
        type="subscriptions.plan.renewal_confirmed",
        time=datetime.now(UTC).isoformat(),
    )
    confirmed["data"]["plan"]["renewal_decision"] = "renew"
    confirmed["data"]["actor"] = {"id": "u1", "email": "jonas@bluepeak.example", "name": "Jonas"}
    await broker.publish(confirmed)
    (email,) = await smtp_server.wait_for(1)  # plan_will_be_renewed, to the renewal group
    assert email.message["X-Herald-Notification"] == "plan_will_be_renewed"
    rows = await scheduling_service.reminders.store.listing("plan-renew-1")
    assert {row.offset: row.status for row in rows}[15] == "cancelled"
    assert {row.offset: row.status for row in rows}[3] == "cancelled"


PERIOD_START = (datetime.now(UTC) - timedelta(days=10)).replace(microsecond=0)


def usage(peak: int, capacity: int, subscription: str) -> dict[str, Any]:
    document = copy.deepcopy(load_example("interop.teams.usage_reported"))
    now = datetime.now(UTC)
    document.update(id=str(uuid.uuid4()), time=now.isoformat())
    document["data"].update(
        subscription_id=subscription,
        peak_concurrent_calls=peak,
        licensed_capacity=capacity,
        measured_at=now.isoformat(),
        billing_period={
            "starts_at": PERIOD_START.isoformat(),
            "ends_at": (PERIOD_START + timedelta(days=30)).isoformat(),
        },
    )
    return document


async def test_usage_alerts_once_per_period_and_oversubscription_once(
    scheduling_service: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    await broker.publish(usage(17, 20, "sub-a"))
    await broker.publish(usage(17, 20, "sub-a"))
    await wait_for_metric(scheduling_service, "herald_events_processed_total", 2, domain="interop")
    usage_emails = await smtp_server.wait_for(2)  # customer and partner contacts
    assert {e.message["Subject"] for e in usage_emails} == {
        "85% usage notification for Cloud Portal Cloud Video Interop for Microsoft Teams: "
        "Northwind Health"
    }
    await broker.publish(usage(23, 20, "sub-a"))
    await broker.publish(usage(25, 20, "sub-a"))
    await wait_for_metric(scheduling_service, "herald_events_processed_total", 4, domain="interop")
    await smtp_server.wait_for(4)
    over = [e for e in smtp_server.received if "Oversubscription" in e.message["Subject"]]
    assert len(over) == 2 and len(smtp_server.received) == 4
    # A customer under 10 licenses gets no usage alert.
    await broker.publish(usage(9, 9, "sub-small"))
    await wait_for_metric(scheduling_service, "herald_events_processed_total", 5, domain="interop")
    assert len(smtp_server.received) == 4


async def test_two_replicas_on_one_postgresql_ledger_fire_each_reminder_once(
    amqp_url: str,
    postgres_url: str,
    smtp_server: SmtpServer,
    tmp_path: Path,
    broker: Broker,
    unused_tcp_port_factory: Callable[[], int],
) -> None:
    from herald.ledger.store import SqlLedger
    from herald.ledger.tables import metadata

    ledger = await SqlLedger.open(postgres_url)
    async with ledger._engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            await connection.execute(table.delete())
    await ledger.close()
    config = _config(tmp_path)
    processes = []
    for _ in range(2):
        env = {
            **os.environ,
            "HERALD_AMQP_URL": amqp_url,
            "HERALD_DATABASE_URL": postgres_url,
            "HERALD_SMTP_HOST": smtp_server.host,
            "HERALD_SMTP_PORT": str(smtp_server.port),
            "HERALD_HTTP_PORT": str(unused_tcp_port_factory()),
            "HERALD_CONFIG": str(config),
            "HERALD_SCHEDULER_INTERVAL_SECONDS": "0.2",
            "HERALD_LOG_LEVEL": "WARNING",
        }
        processes.append(
            await asyncio.create_subprocess_exec(
                HERALD, "run", env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
            )
        )
    try:
        plans = [plan_created(3) for _ in range(6)]
        for document in plans:
            await broker.publish(document)
        received = await smtp_server.wait_for(6, timeout=60)
        await asyncio.sleep(3)  # many more passes of both schedulers
        assert len(smtp_server.received) == 6
        assert sorted(e.message["Message-ID"] for e in received) == sorted(
            {e.message["Message-ID"] for e in received}
        )
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            await asyncio.wait_for(process.communicate(), timeout=30)
    assert all(process.returncode == 0 for process in processes)


def _set_path(data: dict[str, Any], path: str, value: str) -> None:
    *parents, last = path.split(".")
    for part in parents:
        data = data[part]
    data[last] = value


# Every scheduled notification type, from a real arming event, due today at its smallest offset.
# (notification, arming example, extra data changes, subject, recipients) from NOTIFICATIONS.md.
SCHEDULED = [
    (
        "plan_expiry_reminder",
        "subscriptions.plan.created",
        {},
        "Northwind Health license plan expires in 3 days",
        {RENEWAL_RECIPIENT},
    ),
    (
        "trial_reminder_company",
        "subscriptions.trial.started",
        {},
        "Trial reminder - Skagen Architects",
        {"office@skagenarch.example"},  # customer contact; nothing configured
    ),
    (
        "trial_reminder_end_user",
        "subscriptions.trial.started+end_user",
        {},
        "Trial reminder: your trial of Personal meeting room ends in 7 days",
        {"oskar.lind@northwind.example"},
    ),
    (
        "offer_trial_expiry",
        "subscriptions.trial.started+offer",
        {},
        {  # the customer reads "your trial"; the partner reads whose trial it is
            "rachel.moore@lakesideclinics.example": "Your trial of Secure Email Gateway expires in "
            "1 day",
            "orders@redwoodnet.example": "Trial of Secure Email Gateway for Lakeside Family "
            "Clinics expires in 1 day",
        },
        {"rachel.moore@lakesideclinics.example", "orders@redwoodnet.example"},
    ),
    (
        "subscription_auto_renewal_reminder",
        "subscriptions.subscription.created",
        {"subscription.auto_renew": True},
        "Subscription Lakeside Family Clinics - Microsoft 365… renews automatically on {date}",
        {"rachel.moore@lakesideclinics.example", "orders@redwoodnet.example"},
    ),
    (
        "subscription_expiry_reminder",
        "subscriptions.subscription.created",
        {"subscription.auto_renew": False},
        "Subscription Lakeside Family Clinics - Microsoft 365 Business Premium expires in 1 day",
        {"rachel.moore@lakesideclinics.example", "orders@redwoodnet.example"},
    ),
    (
        "portal_account_expiry_warning",
        "users.portal_account.created",
        {},
        "Your Cloud Portal Partner Portal account will expire in 30 days",
        {"nina.petrov@harborit.example"},
    ),
]


@pytest.mark.parametrize(
    ("notification", "example", "changes", "subject", "recipients"),
    SCHEDULED,
    ids=[row[0] for row in SCHEDULED],
)
async def test_every_scheduled_notification_is_sent_from_its_arming_event(
    scheduling_service: Service,
    broker: Broker,
    smtp_server: SmtpServer,
    notification: str,
    example: str,
    changes: dict[str, Any],
    subject: str | dict[str, str],
    recipients: set[str],
) -> None:
    series = scheduling_service.pipeline.catalog[notification].series
    assert series is not None
    document = copy.deepcopy(load_example(example))
    now = datetime.now(UTC)
    anchor = (now + timedelta(days=min(series.offsets))).replace(hour=23, minute=0, second=0)
    document.update(id=str(uuid.uuid4()), time=now.isoformat())
    for path, value in changes.items():
        _set_path(document["data"], path, value)
    _set_path(document["data"], series.anchor, anchor.isoformat())
    await broker.publish(document)

    def reminders_received() -> list[Any]:
        return [
            e for e in smtp_server.received if e.message["X-Herald-Notification"] == notification
        ]

    for _ in range(300):  # other emails the arming event triggers arrive too
        if len(reminders_received()) >= len(recipients):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.5)  # and no second copy on later passes
    reminders = reminders_received()
    assert len(reminders) == len(recipients)
    assert {e.recipients[0] for e in reminders} == recipients
    # English templates: dates follow an English recipient's region (en-US: "June 5, 2026").
    locales = {
        person["email"]: person.get("locale") or "en" for person in persons(document["data"])
    }
    for email in reminders:
        locale = locales.get(email.recipients[0], "en")
        date = format_date(anchor, locale if locale.startswith("en") else "en")
        expected = subject if isinstance(subject, str) else subject[email.recipients[0]]
        assert email.message["Subject"] == expected.format(date=date)
