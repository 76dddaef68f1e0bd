"""The Prometheus alert rules: `promtool check rules` and `promtool test rules` (every alert has
a unit test that fires it and one that must not), and each rule's annotations point at its own
section of the runbook."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from herald.service.metrics import Metrics
from tests.support import sample_names

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


def runbook_anchors() -> set[str]:
    """The anchors a Markdown renderer (GitHub, GitLab) gives the runbook's sections."""
    return {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("#")
    }


def test_every_alert_is_annotated_and_its_runbook_url_opens_its_runbook_section() -> None:
    """The conventional `runbook_url` annotation, a URL relative to the repository root (no
    placeholder host), whose fragment is a section of docs/runbook.md named after the alert."""
    anchors = runbook_anchors()
    assert len(alerts()) >= 10
    for rule in alerts():
        name = str(rule["alert"])
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert {"summary", "description", "runbook_url"} <= annotations.keys(), name
        url = urlsplit(str(annotations["runbook_url"]))
        assert (url.scheme, url.netloc, url.query) == ("", "", ""), name
        assert (ROOT / url.path).resolve() == RUNBOOK, name
        assert url.fragment == name.lower() and url.fragment in anchors, name
        assert rule["labels"]["severity"] in ("page", "ticket")  # type: ignore[index]


def test_the_rule_unit_tests_expect_the_same_runbook_urls() -> None:
    """promtool compares annotations exactly: the expected ones carry the same runbook_url."""
    urls = {str(rule["alert"]): rule["annotations"]["runbook_url"] for rule in alerts()}  # type: ignore[index]
    expected = [
        (case["alertname"], alert["exp_annotations"])
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        for alert in case.get("exp_alerts") or []
    ]
    assert expected
    for name, expected_annotations in expected:
        assert expected_annotations["runbook_url"] == urls[name], name
        assert "runbook" not in expected_annotations, name


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
        "Webhooks",
        "After the 250: bounces, complaints, suppressions",
        "Scheduler",
        "Process",
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


def dashboard_panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = json.loads((ROOT / "deploy/grafana/herald.json").read_text())[
        "panels"
    ]
    return panels


def test_dashboard_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard_panels():
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[(x, y)] = panel["title"]


METRIC_NAME = re.compile(r"\b(?:herald_[a-z0-9_]+|process_[a-z0-9_]+)\b")


def exported_metric_names() -> set[str]:
    """Every sample name a fresh replica's registry exports, labelled series or not yet."""
    return sample_names(Metrics().registry.collect())


@pytest.mark.parametrize(
    ("needle", "metric"),
    [
        ("webhook", "herald_webhooks_total"),
        ("ignored", "herald_events_ignored_total"),
        ("duplicate", "herald_events_duplicate_total"),
        ("cpu", "process_cpu_seconds_total"),
        ("memory", "process_resident_memory_bytes"),
    ],
)
def test_dashboard_has_a_panel_for(needle: str, metric: str) -> None:
    """Issue 22: webhooks, ignored and duplicate events, process CPU and memory."""
    panels = [
        panel
        for panel in dashboard_panels()
        if panel["type"] != "row" and needle in panel["title"].lower()
    ]
    assert panels, f"no panel titled with {needle!r}"
    assert any(metric in target["expr"] for panel in panels for target in panel["targets"])


def test_every_metric_of_the_dashboard_and_the_rules_is_one_herald_exports() -> None:
    """A typo in a panel's metric name shows an empty panel, never an error: every name the
    dashboard and the rules use is exported by Herald's registry (labelled series included
    before their first sample). tests/integration/test_observability.py checks the same after a
    real run, and that the panels show data in a real Prometheus."""
    expressions = [
        target["expr"] for panel in dashboard_panels() for target in panel.get("targets", [])
    ]
    groups = yaml.safe_load(RULES.read_text())["groups"]
    expressions += [rule["expr"] for group in groups for rule in group["rules"]]
    used = {name for expression in expressions for name in METRIC_NAME.findall(expression)}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= used
    assert used - exported_metric_names() == set()
