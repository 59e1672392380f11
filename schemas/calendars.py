"""Calendars: when time counts. Business days for the post-incident review, business hours
for the SLA clocks; one module for both.

The date-level functions (``add_business_days``, ``business_days_between``) count weekdays
that are not holidays; the review schedule dates its meeting with them.
``add_business_days`` and ``business_days_between`` are inverses: for ``n > 0``,
``business_days_between(d, add_business_days(d, n, h), h) == n``.

A :class:`Calendar` (the policy's ``calendars:``) names a zone, working hours per weekday
and holidays. ``add_business_time`` and ``business_time_between`` are the SLA clocks'
arithmetic: pure functions of instants, so the workflow, the simulator and the reports get
the same answer. Working hours are wall-clock times in the calendar's zone (zoneinfo), so a
09:00-17:00 day is 8 hours on a DST change day too; every instant returned is UTC and
exact, so a workflow timer set to it wakes at that instant. Paused spans (``paused``) do
not count either: a clock resumed after a pause ends as late as the pause was long in
business time, never later.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

_DAY = timedelta(days=1)


def is_business_day(day: date, holidays: Collection[date] = ()) -> bool:
    return day.weekday() < 5 and day not in holidays


def add_business_days(start: date, days: int, holidays: Collection[date] = ()) -> date:
    """The ``days``-th business day after ``start`` (before it when ``days`` is negative).

    ``start`` itself never counts, so two business days after a Saturday is the Tuesday.
    With ``days == 0`` the result is ``start`` when it is a business day, else the next one:
    "zero business days later" must still land on a working day.
    """
    holidays = frozenset(holidays)
    step = _DAY if days >= 0 else -_DAY
    day = start
    if days == 0:
        while not is_business_day(day, holidays):
            day += _DAY
        return day
    remaining = abs(days)
    while remaining:
        day += step
        if is_business_day(day, holidays):
            remaining -= 1
    return day


def business_days_between(start: date, end: date, holidays: Collection[date] = ()) -> int:
    """Business days in ``(start, end]``; negative when ``end`` is before ``start``.

    Counted in whole weeks first, so a span of years costs no more than a span of days.
    """
    if end < start:
        return -business_days_between(end, start, holidays)
    span = (end - start).days
    weeks, rest = divmod(span, 7)
    count = weeks * 5
    day = start + timedelta(days=weeks * 7)
    for _ in range(rest):
        day += _DAY
        if day.weekday() < 5:
            count += 1
    count -= sum(1 for h in set(holidays) if start < h <= end and h.weekday() < 5)
    return count


def holiday_dates(values: Iterable[str | date]) -> frozenset[date]:
    """Holidays as dates, from ISO strings (the policy file's form) or dates."""
    return frozenset(v if isinstance(v, date) else date.fromisoformat(v.strip()) for v in values)


# ---------------------------------------------------------------------------- business hours

#: the calendar every clock uses unless its severity names another: time always counts
ALWAYS = "24x7"
#: minutes in a day: a span may end at 24:00
_DAY_MINUTES = 24 * 60
#: how many days without working time end the search (holidays cannot fill a year)
_HORIZON_DAYS = 366
_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


#: an IANA time zone name this machine's tz database knows (``Europe/Berlin``)
ZoneName = Annotated[str, AfterValidator(_known_zone)]


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


WEEKDAYS: tuple[Weekday, ...] = tuple(Weekday)


def _parse_span(value: Any) -> Any:
    """``"09:00-17:30"`` -> ``(540, 1050)`` minutes of the day (the end may be 24:00)."""
    if isinstance(value, str):
        m = _SPAN.match(value)
        if not m:
            raise ValueError(f'{value!r}: write working hours as "HH:MM-HH:MM", e.g. "09:00-17:00"')
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or end > _DAY_MINUTES:
            raise ValueError(f"{value!r}: not a time of day")
        if end <= start:
            raise ValueError(f"{value!r}: the end must be after the start")
        return (start, end)
    return value


def format_span(span: tuple[int, int]) -> str:
    start, end = span
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


#: working hours of one day, minutes since local midnight: ``"09:00-17:00"`` in the policy
Span = Annotated[
    tuple[int, int],
    BeforeValidator(_parse_span),
    PlainSerializer(format_span, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,2}:\d{2}-\d{1,2}:\d{2}$"}),
]


def _spans(value: Any) -> Any:
    """A day's hours: one ``"HH:MM-HH:MM"`` or a list of them (a lunch break)."""
    return [value] if isinstance(value, str) else value


class Calendar(BaseModel):
    """When an SLA clock counts: working hours per weekday in ``zone``, minus ``holidays``.

    A weekday without hours is not worked. The built-in ``24x7`` (:data:`ALWAYS`) counts
    every instant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    zone: ZoneName = "UTC"
    hours: dict[Weekday, Annotated[list[Span], BeforeValidator(_spans)]] = Field(min_length=1)
    holidays: list[date] = Field(default_factory=list, description="ISO dates not worked")

    @model_validator(mode="after")
    def _disjoint(self) -> Calendar:
        for day, spans in self.hours.items():
            ordered = sorted(spans)
            for (_, end), (start, _) in pairwise(ordered):
                if start < end:
                    raise ValueError(f"hours.{day.value}: working hours overlap")
        if not any(self.hours.values()):
            raise ValueError("hours: a calendar needs working hours on at least one day")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @property
    def is_always(self) -> bool:
        """Every instant counts: plain arithmetic gives the same answers."""
        full = [(0, _DAY_MINUTES)]
        return not self.holidays and all(sorted(self.hours.get(d, [])) == full for d in WEEKDAYS)

    def spans_on(self, day: date) -> list[tuple[int, int]]:
        """The working hours of the local date ``day`` (none on a holiday), in order."""
        if day in self.holidays:
            return []
        return sorted(self.hours.get(WEEKDAYS[day.weekday()], []))


#: the default calendar: every hour of every day
ALWAYS_CALENDAR = Calendar(
    name=ALWAYS, zone="UTC", hours={d: [(0, _DAY_MINUTES)] for d in WEEKDAYS}
)

#: a stretch of wall-clock time that does not count (a pause): ``(start, end)``
Interval = tuple[datetime, datetime]


def _at(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """Local ``day`` at ``minute`` past midnight in ``zone``, as UTC (24:00 is the next
    midnight). A time the DST change skips reads with the offset before the change."""
    if minute >= _DAY_MINUTES:
        day, minute = day + _DAY, minute - _DAY_MINUTES
    local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)
    return local.astimezone(UTC)


def working_intervals(calendar: Calendar, start: datetime) -> Iterator[Interval]:
    """The calendar's working time from ``start`` on, as ascending UTC intervals (the first
    clipped to ``start``). Raises ``ValueError`` after a year without any."""
    start = start.astimezone(UTC)
    if calendar.is_always:
        yield start, datetime.max.replace(tzinfo=UTC)
        return
    zone = calendar.tz
    day = start.astimezone(zone).date() - _DAY
    last_end = start
    idle = 0
    while idle <= _HORIZON_DAYS:
        idle += 1
        for s, e in calendar.spans_on(day):
            a, b = _at(day, s, zone), _at(day, e, zone)
            a = max(a, last_end)
            if b <= a:
                continue
            last_end = b
            idle = 0
            yield a, b
        day += _DAY
    raise ValueError(f"calendar {calendar.name!r} has no working time after {last_end.isoformat()}")


def _minus(intervals: Iterator[Interval], paused: Sequence[Interval]) -> Iterator[Interval]:
    """``intervals`` without the ``paused`` ones (which may overlap and be unordered)."""
    cuts = sorted((a.astimezone(UTC), b.astimezone(UTC)) for a, b in paused if b > a)
    for a, b in intervals:
        for pa, pb in cuts:
            if pb <= a or pa >= b:
                continue
            if pa > a:
                yield a, pa
            a = max(a, pb)
            if a >= b:
                break
        if a < b:
            yield a, b


def add_business_time(
    start: datetime,
    amount: timedelta,
    calendar: Calendar = ALWAYS_CALENDAR,
    paused: Sequence[Interval] = (),
) -> datetime:
    """The instant ``amount`` of the calendar's working time (outside ``paused``) has passed
    since ``start``, in UTC. An amount that ends exactly where working hours end lands
    there (17:00), not on the next morning; ``amount <= 0`` is ``start`` itself."""
    start = start.astimezone(UTC)
    if amount <= timedelta(0):
        return start
    if calendar.is_always and not paused:
        return start + amount
    remaining = amount
    for a, b in _minus(working_intervals(calendar, start), paused):
        if b - a >= remaining:
            return a + remaining
        remaining -= b - a
    raise AssertionError("unreachable: working_intervals raises at its horizon")


def business_time_between(
    start: datetime,
    end: datetime,
    calendar: Calendar = ALWAYS_CALENDAR,
    paused: Sequence[Interval] = (),
) -> timedelta:
    """Working time (outside ``paused``) in ``[start, end)``; negative when ``end`` is
    before ``start``."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end < start:
        return -business_time_between(end, start, calendar, paused)
    if calendar.is_always and not paused:
        return end - start
    total = timedelta(0)
    try:
        for a, b in _minus(working_intervals(calendar, start), paused):
            if a >= end:
                break
            total += min(b, end) - a
    except ValueError:
        pass  # no working time at all after some point: nothing more counts
    return total


def is_working(instant: datetime, calendar: Calendar) -> bool:
    """Whether the calendar counts ``instant`` (its working hours, not a holiday)."""
    a, _ = next(working_intervals(calendar, instant))
    return a <= instant.astimezone(UTC)


def next_working_instant(instant: datetime, calendar: Calendar) -> datetime:
    """``instant`` when the calendar counts it, else when its working hours next begin."""
    a, _ = next(working_intervals(calendar, instant))
    return a
