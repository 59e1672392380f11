"""Path and query parameter types shared by the native routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path

from starter import tickets_read
from starter.api.errors import ApiError

NUMBER_PATTERN = r"^INC-[1-9][0-9]{0,17}$"
#: no NUL: PostgreSQL cannot compare a text value holding one
TEXT_PATTERN = r"^[^\x00]+$"

NumberPath = Annotated[
    str, Path(pattern=NUMBER_PATTERN, description="incident number", examples=["INC-42"])
]


def utc_param(value: datetime | None, name: str) -> datetime | None:
    """A query instant in UTC (naive means UTC); 422 for one beyond the calendar's edge."""
    try:
        return tickets_read.as_utc(value)
    except OverflowError as exc:
        raise ApiError(
            422,
            f"{name} is out of range",
            details=[{"loc": ["query", name], "field": f"query.{name}", "message": "out of range"}],
        ) from exc
