"""Catalog conditions are type-checked against the event models (issue 17, item 5).

mypy, with the project's configuration, checks small modules that declare entries the way
catalog/<domain>.py does: a condition that reads an attribute its model lacks fails, a correct
one passes, and the real domain modules keep a concrete model per entry (an `Any` there would
switch the check off). The start-up check that the declared models are the contract's runs too.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from herald.catalog.recipients import is_known_role
from herald.catalog.registry import load_catalog
from herald.catalog.spec import Catalog, NotificationSpec
from herald.errors import ConfigurationError
from herald.schemas.orders import OrderSubmitted
from herald.schemas.registry import EVENT_SCHEMAS

ROOT = Path(__file__).resolve().parents[2]

HEADER = """\
from herald.catalog.spec import NotificationSpec, ReminderSeries
from herald.schemas.orders import OrderPlaced
from herald.schemas.subscriptions import TrialExtended, TrialStarted
"""

CORRECT = """\
SERIES: ReminderSeries[TrialStarted | TrialExtended] = ReminderSeries(
    entity="trial.id",
    anchor="trial.ends_at",
    offsets=(7,),
    cycle_key="trial.ends_at",
    armed_while=lambda data: data.trial.kind == "offer",
    arming_events={
        "subscriptions.trial.started": TrialStarted,
        "subscriptions.trial.extended": TrialExtended,
    },
    ending_events=("subscriptions.trial.ended",),
)
SPECS = (
    NotificationSpec(
        id="typing_probe",
        product="marketplace",
        trigger="orders.order.placed",
        trigger_model=OrderPlaced,
        condition=lambda data: data.order.storefront == "marketplace",
        recipients=("order_placer",),
    ),
    NotificationSpec(
        id="typing_probe_reminder",
        product="marketplace",
        kind="schedule",
        trigger="subscriptions.trial.started",
        trigger_model=TrialStarted,
        series=SERIES,
        recipients=("customer_contact",),
    ),
)
"""

# Each wrong probe is the correct module with one misspelt attribute.
WRONG_CONDITION = CORRECT.replace("data.order.storefront", "data.order.storefrnt")
WRONG_SERIES = CORRECT.replace("data.trial.kind", "data.trial.knd")

DOMAIN_MODULES = ("orders", "subscriptions", "users", "interop", "catalog_domain")
REVEAL = "from herald.catalog import {modules}\n{reveals}".format(
    modules=", ".join(DOMAIN_MODULES),
    reveals="".join(f"reveal_type({module}.SPECS)\n" for module in DOMAIN_MODULES),
)


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, int]]:
    """mypy's report on each probe module, from one run with a fresh cache (about 3 s)."""
    folder = tmp_path_factory.mktemp("typing")
    probes = {
        "wrong_condition": HEADER + WRONG_CONDITION,
        "wrong_series": HEADER + WRONG_SERIES,
        "correct": HEADER + CORRECT,
        "reveal": REVEAL,
    }
    for name, text in probes.items():
        (folder / f"{name}.py").write_text(text)
    # A process of its own: mypy in this one would raise its recursion limit (deep JSON would
    # then parse in later tests) and retune the garbage collector. Run in this checkout, where
    # it finds `herald`.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(folder / ".mypy_cache"),
            "--no-error-summary",
            *(str(folder / f"{name}.py") for name in probes),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    stdout, stderr = result.stdout, result.stderr
    assert not stderr, stderr
    lines = stdout.splitlines()
    return {
        name: (
            "\n".join(line for line in lines if line.startswith(str(folder / f"{name}.py"))),
            sum(f"{name}.py:" in line and ": error:" in line for line in lines),
        )
        for name in probes
    }


def test_a_condition_reading_a_wrong_attribute_fails_the_type_check(
    mypy_report: dict[str, tuple[str, int]],
) -> None:
    report, errors = mypy_report["wrong_condition"]
    assert errors == 1, report
    assert '"Order" has no attribute "storefrnt"' in report


def test_a_series_condition_reading_a_wrong_attribute_fails_the_type_check(
    mypy_report: dict[str, tuple[str, int]],
) -> None:
    report, errors = mypy_report["wrong_series"]
    assert errors == 1, report
    assert '"Trial" has no attribute "knd"' in report


def test_correct_entries_pass_the_type_check(mypy_report: dict[str, tuple[str, int]]) -> None:
    report, errors = mypy_report["correct"]
    assert errors == 0, report


def test_every_domain_entry_keeps_its_model(mypy_report: dict[str, tuple[str, int]]) -> None:
    report, errors = mypy_report["reveal"]
    assert errors == 0, report
    revealed = [line for line in report.splitlines() if "Revealed type is" in line]
    assert len(revealed) == len(DOMAIN_MODULES), report
    for line in revealed:
        assert "NotificationSpec[herald.schemas." in line, line
        assert "Any" not in line and "ContractModel" not in line, line


def test_the_catalog_declares_the_contracts_models() -> None:
    load_catalog().check_triggers(EVENT_SCHEMAS)


def test_a_model_other_than_the_contracts_fails_at_start_up() -> None:
    wrong = NotificationSpec(
        id="order_placed",
        product="marketplace",
        trigger="orders.order.placed",
        trigger_model=OrderSubmitted,
        recipients=("order_placer",),
    )
    catalog = Catalog([wrong], known_roles=is_known_role)
    with pytest.raises(
        ConfigurationError,
        match=re.escape("orders.order.placed carries OrderPlaced, not OrderSubmitted"),
    ):
        catalog.check_triggers(EVENT_SCHEMAS)
