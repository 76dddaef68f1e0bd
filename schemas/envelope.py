"""The CloudEvents 1.0 envelope (EVENTS.md section 3) and the validated `Event` value."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import StringConstraints

from herald.schemas.base import ContractModel
from herald.schemas.scalars import Timestamp

# Use with `fullmatch`: `match` with `$` would accept a trailing newline.
EVENT_TYPE_FORM = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")

# 1 to 255 bytes of ASCII so that it fits the AMQP message_id (a short string).
EventId = Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]{1,255}$")]
Source = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,1024}$")]


class Envelope(ContractModel):
    specversion: Literal["1.0"]
    id: EventId
    source: Source
    type: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    time: Timestamp
    datacontenttype: Literal["application/json"]
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    """A valid event of a type this contract defines: the envelope plus its typed `data`."""

    id: str
    source: str
    type: str
    time: datetime
    data: ContractModel

    @property
    def domain(self) -> str:
        return self.type.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class IgnoredEvent:
    """A well-formed event whose type, in a known domain, this contract does not define."""

    id: str
    source: str
    type: str

    @property
    def domain(self) -> str:
        return self.type.split(".", 1)[0]
