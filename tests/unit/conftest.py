"""Unit-test fixtures: the composed pipeline on the in-memory ledger and a memory sender, with
Prometheus metrics (`tests.support.counter` reads them)."""

from __future__ import annotations

import pytest

from herald.ledger.memory import MemoryLedger
from herald.senders.memory import MemorySender
from herald.service.metrics import Metrics
from herald.workflow.pipeline import Pipeline
from tests import support


@pytest.fixture
def ledger() -> MemoryLedger:
    return MemoryLedger()


@pytest.fixture
def sender() -> MemorySender:
    return MemorySender()


@pytest.fixture
def pipeline(ledger: MemoryLedger, sender: MemorySender) -> Pipeline:
    return Pipeline(
        catalog=support.catalog(),
        directory={},
        renderer=support.renderer(),
        sender=sender,
        ledger=ledger,
        observer=Metrics(),
    )
