"""Export the contract as JSON Schema (one document per event type: the CloudEvent envelope
with its `data` schema) and as an AsyncAPI 3.0 document of `portal.events`, so upstream teams
can validate before publishing. Conditional rules ("required when ...") are not expressible in
JSON Schema; the data models' validators remain the authority."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from herald.schemas.base import ContractModel

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
EXCHANGE = "portal.events"


def event_schema(event_type: str, model: type[ContractModel]) -> dict[str, Any]:
    """The JSON Schema of a whole CloudEvent of `event_type`."""
    data_schema = model.model_json_schema(ref_template="#/$defs/{model}")
    definitions = data_schema.pop("$defs", {})
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:herald:events:{event_type}",
        "title": event_type,
        "description": f"A CloudEvent of type {event_type} (EVENTS.md), structured JSON mode.",
        "type": "object",
        "required": ["specversion", "id", "source", "type", "time", "datacontenttype", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "pattern": "^[\\x20-\\x7e]{1,255}$"},
            "source": {"type": "string", "minLength": 1, "maxLength": 1024},
            "type": {"const": event_type},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"const": "application/json"},
            "data": data_schema,
        },
        "$defs": definitions,
    }


def _pascal(event_type: str) -> str:
    return "".join(part.capitalize() for part in event_type.replace("_", ".").split("."))


def asyncapi_document(schemas: Mapping[str, type[ContractModel]], version: str) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    components_schemas: dict[str, Any] = {}
    for event_type, model in sorted(schemas.items()):
        schema = event_schema(event_type, model)
        # AsyncAPI resolves references from the document root: lift the definitions.
        definitions = schema.pop("$defs")
        text = json.dumps(schema).replace('"#/$defs/', '"#/components/schemas/')
        schema = json.loads(text)
        for name, definition in definitions.items():
            lifted = json.loads(
                json.dumps(definition).replace('"#/$defs/', '"#/components/schemas/')
            )
            components_schemas.setdefault(name, lifted)
        schema.pop("$schema", None)
        components_schemas[event_type] = schema
        name = _pascal(event_type)
        messages[name] = {
            "name": event_type,
            "title": event_type,
            "contentType": "application/cloudevents+json",
            "payload": {"$ref": f"#/components/schemas/{event_type}"},
            # AMQP bindings 0.3.0: a message binding holds only contentEncoding and messageType,
            # neither of which the contract sets (content_encoding MUST be absent).
            "bindings": {"amqp": {"bindingVersion": "0.3.0"}},
        }
        channels[name] = {
            "address": event_type,
            "title": f"{EXCHANGE} with routing key {event_type}",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {
                "amqp": {
                    "bindingVersion": "0.3.0",
                    "is": "routingKey",
                    "exchange": {
                        "name": EXCHANGE,
                        "type": "topic",
                        "durable": True,
                        "autoDelete": False,
                        "vhost": "/",
                    },
                }
            },
        }
        operations[f"publish{name}"] = {
            "action": "send",
            "summary": f"Upstream publishes {event_type} (persistent, publisher confirms, "
            "message_id = id).",
            "channel": {"$ref": f"#/channels/{name}"},
            "messages": [{"$ref": f"#/channels/{name}/messages/{name}"}],
            # deliveryMode is a property of the publish (AMQP bindings 0.3.0 operation binding),
            # not of the message: EVENTS.md section 2, delivery_mode = 2 on every message.
            "bindings": {"amqp": {"bindingVersion": "0.3.0", "deliveryMode": 2}},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Portal events consumed by Herald",
            "version": version,
            "description": "CloudEvents 1.0 in structured JSON mode on the topic exchange "
            f"{EXCHANGE}; the routing key equals the event type (EVENTS.md section 2).",
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "rabbitmq": {"host": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0.9.1"}
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": components_schemas},
    }


def export(directory: Path, schemas: Mapping[str, type[ContractModel]], version: str) -> int:
    """Write `<type>.schema.json` per event type and `asyncapi.yaml`; return the schema count."""
    directory.mkdir(parents=True, exist_ok=True)
    for event_type, model in sorted(schemas.items()):
        path = directory / f"{event_type}.schema.json"
        path.write_text(json.dumps(event_schema(event_type, model), indent=2) + "\n", "utf-8")
    document = asyncapi_document(schemas, version)
    (directory / "asyncapi.yaml").write_text(
        yaml.safe_dump(copy.deepcopy(document), sort_keys=False, allow_unicode=True), "utf-8"
    )
    return len(schemas)
