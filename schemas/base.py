"""The base model every contract object derives from: strict types, frozen, unknown fields
ignored (EVENTS.md 4.1), and `null` meaning the same as absent."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class ContractModel(BaseModel):
    """Strict, immutable, forward compatible."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, value: Any) -> Any:
        # EVENTS.md 4.1: null for an optional field means absent; null for a required field
        # is then reported as a missing field.
        if isinstance(value, dict) and None in value.values():
            return {key: item for key, item in value.items() if item is not None}
        return value
