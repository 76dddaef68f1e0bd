"""Helpers shared by the tests: build deliveries from documents, render with the real stages."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from herald.catalog.plan import Planned, plan_event
from herald.catalog.recipients import Directory
from herald.catalog.registry import load_catalog
from herald.catalog.spec import Catalog
from herald.consumers.delivery import InboundMessage
from herald.ledger.records import NewDelivery, Settlement
from herald.ledger.store import SqlLedger
from herald.renderers.branding import BrandConfig
from herald.renderers.email import EmailRenderer, OutgoingEmail
from herald.renderers.environment import Templates
from herald.schemas.decode import decode
from herald.schemas.envelope import Event
from herald.service.metrics import Metrics
from herald.service.settings import Settings
from herald.tools.preview import applies, render_preview
from herald.workflow.pipeline import Pipeline
from tests.email_lint import visible_text

CONTENT_TYPE = "application/cloudevents+json"


def inbound(document: dict[str, Any] | bytes, **overrides: Any) -> InboundMessage:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    fields: dict[str, Any] = {
        "body": body,
        "routing_key": document["type"] if isinstance(document, dict) else "orders.order.placed",
        "content_type": CONTENT_TYPE,
        "content_encoding": None,
        "message_id": document["id"] if isinstance(document, dict) else "x",
        "queue": "herald.orders",
    }
    fields.update(overrides)
    return InboundMessage(**fields)


def event_of(document: dict[str, Any]) -> Event:
    decoded = decode(inbound(document))
    assert isinstance(decoded, Event)
    return decoded


_CATALOG: Catalog | None = None
_TEMPLATES: Templates | None = None


def catalog() -> Catalog:
    global _CATALOG
    if _CATALOG is None:
        _CATALOG = load_catalog()
    return _CATALOG


def templates() -> Templates:
    global _TEMPLATES
    if _TEMPLATES is None:
        _TEMPLATES = Templates()
    return _TEMPLATES


def renderer(brand: BrandConfig | None = None) -> EmailRenderer:
    return EmailRenderer(templates(), brand or BrandConfig(), Settings().sender)


def plan(document: dict[str, Any], directory: Directory | None = None) -> Planned:
    return plan_event(event_of(document), catalog(), directory or {})


def render_all(
    document: dict[str, Any], directory: Directory | None = None, brand: BrandConfig | None = None
) -> list[OutgoingEmail]:
    """The emails the pipeline would send for `document`."""
    event = event_of(document)
    planned = plan_event(event, catalog(), directory or {})
    email_renderer = renderer(brand)
    return [email_renderer.render(event, delivery) for delivery in planned.deliveries]


def render_every_kind(
    document: dict[str, Any], directory: Directory | None = None
) -> list[OutgoingEmail]:
    """Every email `document` can produce: its event notifications, and the reminders it arms
    and threshold alerts it is evaluated for, rendered as previews."""
    event = event_of(document)
    email_renderer = renderer()
    return [
        email
        for spec in catalog()
        if applies(spec, event)
        for email in render_preview(spec, event, email_renderer, directory or {})
    ]


def parse(email: OutgoingEmail | bytes) -> EmailMessage:
    content = email if isinstance(email, bytes) else email.content
    parsed = message_from_bytes(content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def text_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def html_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Mail:
    """One rendered email as its reader sees it: the text part with LF line endings, and the
    HTML part's visible words, whitespace collapsed."""

    to: str
    subject: str
    text: str
    words: str


def mails(
    document: dict[str, Any], notification: str, directory: Directory | None = None
) -> dict[str, Mail]:
    """Recipient address -> the `notification` email `document` produces for it (reminders and
    threshold alerts rendered as previews)."""
    found: dict[str, Mail] = {}
    for email in render_every_kind(document, directory):
        if email.notification != notification:
            continue
        message = parse(email)
        to = message["To"].addresses[0].addr_spec
        found[to] = Mail(
            to=to,
            subject=email.subject,
            text=text_part(message).replace("\r\n", "\n"),
            words=" ".join(visible_text(html_part(message)).split()),
        )
    assert found, f"no {notification} email from this event"
    return found


def sample_sum(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The sum of every sample called `name` whose labels include `labels` (0 when none)."""
    return sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


GOLDEN = Path(__file__).resolve().parent / "golden"


def assert_golden(folder: Path, rendered: dict[str, str]) -> None:
    """Compare each rendered file with its golden copy in `folder`; with
    `HERALD_UPDATE_GOLDEN=1`, write them first (then review the diff)."""
    if os.environ.get("HERALD_UPDATE_GOLDEN") == "1":
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in rendered.items():
            (folder / name).write_text(content, "utf-8")
    for name, content in rendered.items():
        path = folder / name
        assert path.exists(), f"no golden file {path}; run with HERALD_UPDATE_GOLDEN=1"
        assert content == path.read_text("utf-8"), f"{path.relative_to(GOLDEN)} changed"


def golden_parts(email: OutgoingEmail) -> dict[str, str]:
    """The subject, text and HTML of `email`, as golden files hold them."""
    message = parse(email)
    return {
        "subject.txt": email.subject + "\n",
        "body.txt": text_part(message).replace("\r\n", "\n"),
        "body.html": html_part(message).replace("\r\n", "\n"),
    }


def build_wheel(source: Path, out: Path) -> Path:
    """Herald's wheel built from `source` (a checkout) into `out`, as the Dockerfile builds it
    (without build isolation: the dev extra brings setuptools and wheel, so no network)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        cwd=out.parent,
        timeout=240,
    )
    (wheel,) = out.glob("herald-*.whl")
    return wheel


def counter(pipeline: Pipeline, name: str, **labels: str) -> float:
    """A metric of a pipeline built with the Prometheus observer (tests/unit/conftest.py)."""
    assert isinstance(pipeline.observer, Metrics)
    return sample_sum(pipeline.observer.registry, name, **labels)


async def record_sent(
    ledger: SqlLedger,
    key: str,
    recipient: str,
    message_id: str | None = None,
    reply: str = "250 2.0.0 queued as 4XyZ",
) -> None:
    """A delivery of `order_placed` for event ("/orders", "evt-1") that the ledger holds as
    sent: what a report after the 250 is about."""
    delivery = NewDelivery(
        key=key,
        notification="order_placed",
        channel="email",
        event_source="/orders",
        event_id="evt-1",
        recipient=recipient,
        message_id=message_id or f"<{key[:40]}@operator.example>",
    )
    await ledger.claim_many([delivery], timedelta(minutes=10))
    await ledger.settle([Settlement(key, "sent", reply)])


HERALD_BINARY = str(Path(sys.executable).parent / "herald")


async def herald_command(*args: str, **variables: str) -> tuple[int, str, str]:
    """Run the installed `herald ARGS` with these environment variables added (HERALD_* and
    COLUMNS, say), stdout and stderr piped; its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        HERALD_BINARY,
        *args,
        env={**os.environ, **variables},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def sample_names(families: Iterable[Metric]) -> set[str]:
    """Every sample name these metric families export or can export (a counter's `_total`, a
    histogram's `_bucket`, `_count` and `_sum`, an info's `_info`), labelled series or not."""
    names: set[str] = set()
    for family in families:
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
        if family.type == "info":
            names.add(f"{family.name}_info")
        names.update(sample.name for sample in family.samples)
    return names
