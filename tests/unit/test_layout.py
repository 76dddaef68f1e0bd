"""The house rules (README, "Layout"), checked on every import of every module: data flows one
way through the stages, no stage imports the workflow, the tools or the wiring, the ground floor
imports nothing of Herald, and nothing imports a room by its old top-level name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import herald

PACKAGE = Path(herald.__file__).parent
# The stages in the order data flows through them; the ledger sits beside them.
STAGES = ["consumers", "schemas", "catalog", "renderers", "senders"]
GROUND = {"errors", "faultpoints", "clock"}
# What each room may import of Herald (besides the ground floor and itself).
ALLOWED: dict[str, set[str]] = {
    **{stage: set(STAGES[:index]) for index, stage in enumerate(STAGES)},
    "ledger": {"schemas", "catalog"},  # it records what they describe
    "workflow": {*STAGES, "ledger"},
    "tools": {*STAGES, "ledger", "workflow"},
    # Reports after the 250: it verifies the senders' return-path tokens, records in the ledger.
    "feedback": {"schemas", "senders", "ledger"},
    "service": {*STAGES, "ledger", "workflow", "tools", "feedback"},
}
ROOMS = [*STAGES, "ledger", "workflow", "tools", "feedback", "service"]
OLD_NAMES = {*STAGES, "ledger"}


def modules_of(room: str) -> list[Path]:
    return sorted((PACKAGE / room).rglob("*.py"))


def herald_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of a Herald module, resolved to `herald.<room>...`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "herald":
            found += [(node.lineno, f"herald.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] in {"herald", *OLD_NAMES}]


def room_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "herald":
        return f"old top-level name {parts[0]}"
    return parts[1] if len(parts) > 1 else "herald"


@pytest.mark.parametrize("room", ROOMS)
def test_each_room_imports_only_what_it_may(room: str) -> None:
    wrong = []
    for path in modules_of(room):
        for line, module in herald_imports(path):
            imported = room_of(module)
            if imported == room or imported in GROUND or imported in ALLOWED[room]:
                continue
            wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert wrong == []


def test_the_ground_floor_imports_nothing_of_herald() -> None:
    for name in GROUND:
        assert herald_imports(PACKAGE / f"{name}.py") == []
    assert herald_imports(PACKAGE / "__init__.py") == []


def test_every_room_is_linked_into_the_package() -> None:
    for room in [*ROOMS, "templates"]:
        assert (PACKAGE / room).is_dir(), room
