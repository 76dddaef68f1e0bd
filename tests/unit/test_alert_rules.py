"""The Prometheus alert rules: `promtool check rules` and `promtool test rules` (every alert has
a unit test that fires it and one that must not), and each rule's annotations point at its own
section of the runbook."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/alerts.yml"
RULE_TESTS = ROOT / "deploy/prometheus/alerts_test.yml"
RUNBOOK = ROOT / "docs/runbook.md"


def promtool() -> str:
    executable = shutil.which("promtool")
    if executable is None:
        pytest.fail("promtool is not installed (Debian package prometheus; CI installs it)")
    return executable


def alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=RULE_TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for rule in alerts():
        name = rule["alert"]
        own = [case for case in cases if case["alertname"] == name]
        assert any(case.get("exp_alerts") for case in own), f"{name} never tested firing"
        assert any(not case.get("exp_alerts") for case in own), f"{name} never tested quiet"


def test_every_alert_is_annotated_and_has_its_runbook_section() -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    assert len(alerts()) >= 10
    for rule in alerts():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert {"summary", "description", "runbook"} <= annotations.keys(), rule["alert"]
        anchor = str(annotations["runbook"]).rsplit("#", 1)[1]
        assert "docs/runbook.md#" in str(annotations["runbook"])
        assert anchor == str(rule["alert"]).lower() and anchor in headings, rule["alert"]
        assert rule["labels"]["severity"] in ("page", "ticket")  # type: ignore[index]


def test_dashboard_is_importable_as_is() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/herald.json").read_text())
    assert dashboard.get("id") is None  # an id would clash with the importing Grafana's own
    assert dashboard["uid"] == "herald" and dashboard["title"] == "Herald"
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    rows = [panel["title"] for panel in panels if panel["type"] == "row"]
    assert rows == [
        "Flow",
        "Latency",
        "Errors and retries",
        "Dead letters",
        "Queues and consumers",
        "SMTP",
        "After the 250: bounces, complaints, suppressions",
        "Scheduler",
    ]
    for panel in panels:
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys(), panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["type"] in ("timeseries", "stat"), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'job="herald"' in target["expr"], panel["title"]
