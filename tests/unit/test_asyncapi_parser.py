"""The `asyncapi.yaml` that `herald schemas export` writes is accepted by the official AsyncAPI
parser (npm `@asyncapi/parser`, the parser of the AsyncAPI CLI and Studio), not only shaped
right: upstream teams load it with those tools. The parser is pinned in
tests/tools/asyncapi/package-lock.json and installed there with `npm ci` on first use."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tests/tools/asyncapi"
HERALD = str(Path(sys.executable).parent / "herald")


def _locked_parser_version() -> str:
    lock = json.loads((TOOL / "package-lock.json").read_text("utf-8"))
    return str(lock["packages"]["node_modules/@asyncapi/parser"]["version"])


@pytest.fixture(scope="module")
def node() -> str:
    """Node.js with the locked parser installed under tests/tools/asyncapi/node_modules."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed for the AsyncAPI parser (they come with the machine)")
    installed = TOOL / "node_modules/@asyncapi/parser/package.json"
    if (
        not installed.is_file()
        or json.loads(installed.read_text("utf-8"))["version"] != _locked_parser_version()
    ):
        # --ignore-scripts: nothing the parser needs runs at install time (one dependency's
        # postinstall only reports usage).
        done = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=TOOL,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return node


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`herald schemas export` run as the operator runs it, into a fresh folder."""
    directory = tmp_path_factory.mktemp("asyncapi")
    done = subprocess.run(
        [HERALD, "schemas", "export", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return directory / "asyncapi.yaml"


def parse(node: str, path: Path) -> tuple[int, list[dict[str, Any]]]:
    """The official parser's exit status and diagnostics for the document at `path`."""
    done = subprocess.run(
        [node, str(TOOL / "validate.mjs"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SCARF_ANALYTICS": "false"},
    )
    assert done.returncode in (0, 1), done.stderr
    diagnostics: list[dict[str, Any]] = json.loads(done.stdout)
    return done.returncode, diagnostics


def test_the_official_parser_accepts_the_export_without_errors_or_warnings(
    node: str, exported: Path
) -> None:
    status, diagnostics = parse(node, exported)
    problems = [item for item in diagnostics if item["severity"] in ("error", "warning")]
    assert problems == [], f"{len(problems)} problems, the first: {problems[:3]}"
    assert status == 0


def test_delivery_mode_is_on_each_publish_operation_as_amqp_bindings_0_3_0_place_it(
    exported: Path,
) -> None:
    document = yaml.safe_load(exported.read_text("utf-8"))
    assert len(document["operations"]) == 66
    for operation in document["operations"].values():
        assert operation["bindings"]["amqp"] == {"bindingVersion": "0.3.0", "deliveryMode": 2}
    for message in document["components"]["messages"].values():
        assert "deliveryMode" not in message["bindings"]["amqp"]


def test_the_parser_check_catches_a_misplaced_binding_field(node: str, exported: Path) -> None:
    """The check itself: the parser reports deliveryMode in a message binding (where the export
    used to put it) as an error, so a pass above is not a parser that accepts anything."""
    document = yaml.safe_load(exported.read_text("utf-8"))
    name, message = next(iter(document["components"]["messages"].items()))
    message["bindings"]["amqp"]["deliveryMode"] = 2
    broken = exported.with_name("broken.yaml")
    broken.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    status, diagnostics = parse(node, broken)
    errors = [item for item in diagnostics if item["severity"] == "error"]
    assert status == 1
    where = ["components", "messages", name, "bindings", "amqp"]
    assert errors and all(item["path"][:5] == where for item in errors), errors
