"""Durations and deadlines as people read them at 3 a.m.: ``4m 12s``, ``in 2h 5m``,
``overdue 40s``. Shared by the CLI and the dashboard (whose JavaScript mirrors ``short``)."""

from __future__ import annotations

from datetime import UTC, datetime


def short(seconds: float) -> str:
    """Two units at most: ``3d 4h``, ``2h 5m``, ``4m 12s``, ``9s``."""
    s = int(abs(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {s}s"
    return f"{s}s"


def maybe(seconds: float | None) -> str:
    return "—" if seconds is None else short(seconds)


def countdown(deadline: datetime, now: datetime | None = None) -> str:
    """``in 4m 12s`` before the deadline, ``overdue 40s`` after it."""
    left = (deadline - (now or datetime.now(UTC))).total_seconds()
    return f"in {short(left)}" if left >= 0 else f"overdue {short(left)}"


def age(since: datetime, now: datetime | None = None) -> str:
    return short(((now or datetime.now(UTC)) - since).total_seconds())


def stamp(at: datetime | None) -> str:
    """UTC, to the second: what responders paste into a postmortem."""
    if at is None:
        return "—"
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
