"""Contract draft 2 (NOTIFICATIONS.md 8) end to end on the real broker and SMTP server: the
partner's trial activity list receives the end-user trial emails too, and its copy names the
user and the customer, since the list is not the user."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from herald.schemas.examples import load_example
from herald.service.app import Service, build_service
from tests.conftest import SmtpServer
from tests.integration.conftest import Broker, service_settings
from tests.support import text_part

pytestmark = pytest.mark.integration
TRIAL_LIST = "trials@bluepeak.example"  # org-1204's trial activity list
USER = "oskar.lind@northwind.example"


@pytest.fixture
async def herald(
    amqp_url: str, smtp_server: SmtpServer, tmp_path: Path, broker: Broker
) -> AsyncIterator[Service]:
    config = tmp_path / "herald.yaml"
    config.write_text(
        'reminders:\n  send_time_utc: "00:00"\n'
        f"recipients:\n  org-1204:\n    trial_activity:\n      emails: [{TRIAL_LIST}]\n"
    )
    settings = service_settings(
        amqp_url, smtp_server, tmp_path, config=config, scheduler_interval_seconds=1
    )
    service = await build_service(settings)
    await service.start()
    yield service
    await service.stop()


def _event(example: str) -> dict[str, Any]:
    document = copy.deepcopy(load_example(example))
    now = datetime.now(UTC)
    document.update(id=str(uuid.uuid4()), time=now.isoformat())
    # Due today at the series' smallest offset (7 days), so the scheduler sends it at once.
    ends = (now + timedelta(days=7)).replace(hour=23, minute=0, second=0)
    document["data"]["trial"]["ends_at"] = ends.isoformat()
    return document


async def _received(smtp_server: SmtpServer, notification: str, count: int) -> dict[str, Any]:
    for _ in range(300):
        found = {
            email.recipients[0]: email.message
            for email in smtp_server.received
            if email.message["X-Herald-Notification"] == notification
        }
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{notification}: only {sorted(found)} received")


@pytest.mark.parametrize(
    ("notification", "example"),
    [
        ("trial_reminder_end_user", "subscriptions.trial.started+end_user"),
        ("trial_extended_end_user", "subscriptions.trial.extended+end_user"),
    ],
)
async def test_the_trial_activity_list_gets_the_end_user_trial_emails_naming_user_and_customer(
    herald: Service, broker: Broker, smtp_server: SmtpServer, notification: str, example: str
) -> None:
    # When an end user's trial is started (its reminder due today) or extended
    await broker.publish(_event(example))

    # Then the user and the partner's trial activity list both receive the email
    received = await _received(smtp_server, notification, 2)
    assert set(received) == {USER, TRIAL_LIST}
    # And the list's copy says whom it is about: the user and the customer, not "your trial"
    copy_text = text_part(received[TRIAL_LIST])
    assert "Oskar Lind" in copy_text and "Northwind Health" in copy_text
    assert "trial activity list" in copy_text
    assert "your trial" not in copy_text.lower()
    # While the user's own email speaks to the user
    assert "Oskar Lind" not in text_part(received[USER]).split("\n", 1)[1]
