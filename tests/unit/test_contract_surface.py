"""The contract's surface: the 66 event types, the 77 notification ids, `herald catalog` and
`herald schemas export` (JSON Schema per event type and an AsyncAPI 3.0 document)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from herald.schemas.examples import example_names, load_example
from herald.schemas.registry import EVENT_SCHEMAS
from herald.service.cli import app

CONTRACT = Path(__file__).resolve().parents[3] / "shared" / "contract"


def contract_event_types() -> set[str]:
    text = (CONTRACT / "EVENTS.md").read_text()
    index = text[text.index("## 12. Index of event types") :]
    return set(re.findall(r"`([a-z_]+\.[a-z_]+\.[a-z_]+)`", index))


def contract_notification_ids() -> set[str]:
    text = (CONTRACT / "NOTIFICATIONS.md").read_text()
    catalog = text[text.index("## 2. Catalog") : text.index("### 2.6 Counts")]
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", catalog, flags=re.MULTILINE))


def test_every_contract_event_type_has_a_schema() -> None:
    assert len(contract_event_types()) == 66
    assert set(EVENT_SCHEMAS) == contract_event_types()


def test_every_event_type_has_an_example() -> None:
    covered = {name.split("+", 1)[0] for name in example_names()}
    assert covered == contract_event_types()


def test_catalog_json_lists_exactly_the_77_notification_ids() -> None:
    result = CliRunner().invoke(app, ["catalog", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(contract_notification_ids()) == 77
    assert {row["id"] for row in rows} == contract_notification_ids()
    assert len(rows) == 77
    by_id = {row["id"]: row for row in rows}
    assert by_id["catalog_changed"]["channel"] == ["email", "webhook"]
    assert (
        by_id["plan_expiry_reminder"]["trigger"]
        == "schedule: 45, 30, 15, 3 days before plan.expires_at"
    )
    assert by_id["order_confirmation_new"]["recipients"] == [
        "order_placer",
        "partner_account_manager",
        "vendor_account_manager",
        "config(orders)",
    ]
    sources = [row["source"] for row in rows]
    assert (sources.count("marketplace"), sources.count("partner portal")) == (30, 47)


def test_catalog_table_prints_every_id() -> None:
    result = CliRunner().invoke(app, ["catalog"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    for notification in contract_notification_ids():
        assert notification in result.output


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("export")
    result = CliRunner().invoke(app, ["schemas", "export", str(directory)])
    assert result.exit_code == 0, result.output
    return directory


def test_export_writes_66_valid_json_schemas(exported: Path) -> None:
    files = sorted(exported.glob("*.schema.json"))
    assert len(files) == 66
    for path in files:
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


@pytest.mark.parametrize("name", example_names())
def test_every_example_validates_against_its_exported_schema(exported: Path, name: str) -> None:
    document = load_example(name)
    schema = json.loads((exported / f"{document['type']}.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(document)


def test_exported_schema_rejects_what_the_contract_rejects(exported: Path) -> None:
    schema = json.loads((exported / "orders.order.placed.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    document = load_example("orders.order.placed")
    document["data"]["order"]["lines"][0]["quantity"] = "25"
    assert not validator.is_valid(document)
    document = load_example("orders.order.placed")
    document["data"]["order"]["storefront"] = "shop"
    assert not validator.is_valid(document)


def contract_required_envelope_attributes() -> list[str]:
    """The attributes EVENTS.md section 3.1 marks required."""
    text = (CONTRACT / "EVENTS.md").read_text()
    table = text[text.index("### 3.1 Attributes") : text.index("### 3.2")]
    return re.findall(r"^\| `([a-z]+)` \| [^|]+ \| yes \|", table, flags=re.MULTILINE)


def required_data_fields(event_type: str) -> list[str]:
    """The top-level `data` fields the event's model requires (the models are the authority the
    exported schemas are generated from)."""
    return [
        field.alias or name
        for name, field in EVENT_SCHEMAS[event_type].model_fields.items()
        if field.is_required()
    ]


@pytest.mark.parametrize("name", example_names())
def test_exported_schema_rejects_the_example_without_a_required_field(
    exported: Path, name: str
) -> None:
    """Each field the contract's envelope and the event's model require, removed from the
    contract's example in turn, makes the example invalid under an independent validator
    (jsonschema) and the exported schema."""
    document = load_example(name)
    schema = json.loads((exported / f"{document['type']}.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    envelope = contract_required_envelope_attributes()
    assert envelope == ["specversion", "id", "source", "type", "time", "datacontenttype", "data"]
    data = required_data_fields(document["type"])
    assert data, f"{document['type']} requires no data field"
    for where, key in [(None, key) for key in envelope] + [("data", key) for key in data]:
        damaged = load_example(name)
        del (damaged[where] if where else damaged)[key]
        errors = list(validator.iter_errors(damaged))
        assert any(
            error.validator == "required" and repr(key) in error.message for error in errors
        ), f"{name} without {where or 'envelope'}.{key} still validates"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_asyncapi_document_describes_every_routing_key(exported: Path) -> None:
    document = yaml.safe_load((exported / "asyncapi.yaml").read_text())
    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == contract_event_types()
    for channel in document["channels"].values():
        assert channel["bindings"]["amqp"]["exchange"]["name"] == "portal.events"
        assert channel["bindings"]["amqp"]["exchange"]["type"] == "topic"
    for ref in _refs(document):
        assert ref.startswith("#/"), ref
        _resolve(document, ref)  # raises KeyError for a dangling reference
    assert len(document["operations"]) == 66
