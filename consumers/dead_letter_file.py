"""Dead letters as JSON lines, losslessly: the body's bytes, every AMQP property and header with
its type (str, bytes, int, float, bool, decimal, timestamp, list, table), the routing key.

`herald replay export` writes these lines and `herald replay import` reads them back; a message
exported, imported and exported again gives the same line.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from herald.consumers.dead_letters import StoredMessage

FORMAT = "herald-dead-letter/1"


def encode_value(value: Any) -> dict[str, Any]:
    """One AMQP field value as a one-key object naming its type."""
    if value is None:
        return {"null": None}
    if isinstance(value, bool):  # before int: bool is an int
        return {"bool": value}
    if isinstance(value, int):
        return {"int": value}
    if isinstance(value, float):
        return {"float": value}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, str):
        return {"str": value}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, datetime):
        return {"timestamp": value.isoformat()}
    if isinstance(value, list | tuple):
        return {"list": [encode_value(item) for item in value]}
    if isinstance(value, Mapping):
        return {"table": {str(key): encode_value(item) for key, item in value.items()}}
    raise TypeError(f"cannot export an AMQP value of type {type(value).__name__}")


def decode_value(encoded: Mapping[str, Any]) -> Any:
    if len(encoded) != 1:
        raise ValueError(f"not an encoded value: {sorted(encoded)}")
    ((kind, value),) = encoded.items()
    match kind:
        case "null":
            return None
        case "bool" | "int" | "float" | "str":
            return value
        case "decimal":
            return Decimal(value)
        case "bytes":
            return base64.b64decode(value)
        case "timestamp":
            return datetime.fromisoformat(value)
        case "list":
            return [decode_value(item) for item in value]
        case "table":
            return {key: decode_value(item) for key, item in value.items()}
    raise ValueError(f"unknown value type {kind!r}")


def to_line(message: StoredMessage) -> str:
    document = {
        "format": FORMAT,
        "routing_key": message.routing_key,
        "properties": {name: encode_value(v) for name, v in message.properties.items()},
        "headers": {name: encode_value(v) for name, v in message.headers.items()},
        "body": base64.b64encode(message.body).decode(),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def from_line(line: str) -> StoredMessage:
    document = json.loads(line)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} line")
    return StoredMessage(
        body=base64.b64decode(document["body"], validate=True),
        routing_key=str(document["routing_key"]),
        headers={name: decode_value(v) for name, v in document["headers"].items()},
        properties={name: decode_value(v) for name, v in document["properties"].items()},
    )
