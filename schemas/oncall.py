"""Who is on call: a schedule's rotation plus its overrides, at one instant. Pure functions.

Handoffs follow the wall clock of the schedule's zone. A shift of a whole number of days
hands off at ``handoff`` local time every time, so a weekly rotation that hands off at
09:00 in Berlin still does so the week clocks go forward (that shift is an hour shorter).
Shifts that are not whole days (12h, 36h) are measured in absolute time from the rotation
epoch, since "12 hours" across a DST change cannot mean both 12 elapsed hours and the same
wall-clock times.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from schemas.policy import Override, Schedule

_DAY = timedelta(days=1)


def on_call(schedule: Schedule, at: datetime) -> list[str]:
    """Users on call for ``schedule`` at the aware instant ``at``.

    An override covering ``at`` (``start <= at < end``) replaces the rotation's user; when
    several do, the one that started last wins (a later entry wins a tie), so a short swap
    inside a long holiday cover takes precedence. The result is a list so callers need no
    special case should a schedule ever page more than one person.
    """
    instant = _utc(at)
    override = _covering_override(schedule.overrides, instant)
    if override is not None:
        return [override.user]
    index, _, _ = _shift(schedule, instant)
    return [schedule.users[index % len(schedule.users)]]


def next_handoff(schedule: Schedule, at: datetime) -> datetime:
    """The first rotation handoff strictly after ``at``, as an aware UTC datetime.

    Overrides do not move handoffs: this is when the rotation passes to the next user.
    UTC is returned on purpose: arithmetic between two datetimes sharing a ``ZoneInfo``
    ignores offsets, which would make durations across DST wrong by an hour.
    """
    _, _, end = _shift(schedule, _utc(at))
    return end


def shift_bounds(schedule: Schedule, at: datetime) -> tuple[datetime, datetime]:
    """Start and end (UTC) of the rotation shift containing ``at``."""
    _, start, end = _shift(schedule, _utc(at))
    return start, end


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"on-call look-ups need an aware datetime, got naive {at.isoformat()}")
    return at.astimezone(UTC)


def _covering_override(overrides: list[Override], at: datetime) -> Override | None:
    best: Override | None = None
    for ov in overrides:
        if ov.start <= at < ov.end and (best is None or ov.start >= best.start):
            best = ov
    return best


def _local_epoch(schedule: Schedule) -> datetime:
    """The rotation epoch as a naive wall-clock time in the schedule's zone.

    A start written as a bare date (midnight) means "that day, at the handoff time".
    """
    zone = ZoneInfo(schedule.zone)
    start = schedule.start
    if start.tzinfo is not None:
        start = start.astimezone(zone).replace(tzinfo=None)
    if start.time() == time(0, 0):
        return datetime.combine(start.date(), _handoff(schedule))
    return start


def _handoff(schedule: Schedule) -> time:
    return schedule.handoff.replace(tzinfo=None)


def _wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """Instant of a local wall-clock time. A time skipped by DST maps one offset early
    (02:30 on spring-forward day is 03:30 summer time); a repeated time maps to its first
    occurrence (``fold=0``)."""
    return wall.replace(tzinfo=zone).astimezone(UTC)


def _shift(schedule: Schedule, at: datetime) -> tuple[int, datetime, datetime]:
    """(shift index since the epoch, shift start, shift end) for the UTC instant ``at``."""
    zone = ZoneInfo(schedule.zone)
    epoch = _local_epoch(schedule)
    shift = schedule.shift
    if shift % _DAY == timedelta(0):
        return _calendar_shift(epoch.date(), _handoff(schedule), shift.days, zone, at)
    start_utc = _wall_to_utc(epoch, zone)
    index = (at - start_utc) // shift
    begin = start_utc + index * shift
    return index, begin, begin + shift


def _calendar_shift(
    epoch_day: date, handoff: time, days: int, zone: ZoneInfo, at: datetime
) -> tuple[int, datetime, datetime]:
    """Whole-day shifts: count handoff days in the local calendar, not elapsed hours."""

    def boundary(day: date) -> datetime:
        return _wall_to_utc(datetime.combine(day, handoff), zone)

    # the local "handoff day" of ``at``: the last day whose handoff is not after ``at``
    day = at.astimezone(zone).date()
    while boundary(day) > at:
        day -= _DAY
    while boundary(day + _DAY) <= at:
        day += _DAY
    index = (day - epoch_day).days // days
    first = epoch_day + timedelta(days=index * days)
    return index, boundary(first), boundary(first + timedelta(days=days))
