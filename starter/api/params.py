"""Path, query and body value types shared by the API's routes, each declared in the OpenAPI
document exactly as strictly as it is checked, so a client generated from the document never
sends what the API refuses."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import BeforeValidator, TypeAdapter, WithJsonSchema

from schemas.enums import TargetKind

NUMBER_PATTERN = r"^INC-[1-9][0-9]{0,17}$"
#: no NUL: PostgreSQL cannot compare a text value holding one
TEXT_PATTERN = r"^[^\x00]+$"
#: what Python's ``str.strip`` removes, spelled out: ``\s`` means something else in the
#: OpenAPI document's regex dialect (and in pydantic's)
_SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: text the incident workflow takes (its validator refuses text that strips to nothing)
NOT_BLANK_PATTERN = rf"[^{_SPACE}]"
#: an escalation target as ``EscalationTarget`` reads it: ``kind:name``, the name not blank
TARGET_PATTERN = rf"^[{_SPACE}]*(?:{'|'.join(TargetKind)})[{_SPACE}]*:[\s\S]*{NOT_BLANK_PATTERN}"

NumberPath = Annotated[
    str, Path(pattern=NUMBER_PATTERN, description="incident number", examples=["INC-42"])
]

_DATE_TIME_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
_DATETIME = TypeAdapter(datetime)


def _instant(value: Any) -> datetime:
    """An RFC 3339 date-time *with* its UTC offset, as an aware datetime in UTC.

    Pydantic alone would also take epoch seconds (``0.5``) and naive times, which the
    ``date-time`` format of the document excludes. An instant past the calendar's edge once
    moved to UTC (``0001-01-01T00:00:00+01:00``) is clamped to that edge: as a filter bound
    it means the same thing.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and _DATE_TIME_SHAPE.match(value):
        parsed = _DATETIME.validate_python(value)
    else:
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-03-02T09:30:00Z")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("needs a UTC offset, e.g. 2026-03-02T09:30:00Z or +01:00")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        edge = datetime.min if parsed.year == datetime.min.year else datetime.max
        return edge.replace(tzinfo=UTC)


#: an instant on the wire: RFC 3339 with a UTC offset (``Z`` or ``±hh:mm``), kept in UTC
Instant = Annotated[
    datetime,
    BeforeValidator(_instant),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "description": "RFC 3339, with a UTC offset"}
    ),
]
