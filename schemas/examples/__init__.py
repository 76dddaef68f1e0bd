"""Realistic example events, one JSON file per event type and variant
(`<type>.json`, `<type>+<variant>.json`). Used by tests, previews and the publish helper."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

EXAMPLES_DIR = Path(str(resources.files(__name__)))


def example_names() -> list[str]:
    """`orders.order.placed`, `orders.order.placed+marketplace`, ..."""
    return sorted(path.stem for path in EXAMPLES_DIR.glob("*.json"))


def load_example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES_DIR / f"{name}.json").read_text("utf-8"))
    return document
