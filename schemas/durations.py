"""Human durations for the policy file: ``30s``, ``5m``, ``1h30m``, ``2d``, or seconds."""

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> Any:
    """Turn ``"1h30m"`` into a timedelta; leave anything else to pydantic's own parsing."""
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if text and _PART.sub("", text) == "" and _PART.search(text):
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text))
            return timedelta(seconds=seconds)
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return timedelta(seconds=float(text))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


def format_duration(value: timedelta) -> str:
    """Compact form of a duration (``1h30m``), the inverse of :func:`parse_duration`."""
    total = value.total_seconds()
    if total < 1:
        return f"{round(total * 1000)}ms"
    parts = []
    rest = int(total)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda v: v.total_seconds(), return_type=float, when_used="json"),
]
