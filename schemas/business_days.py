"""Business-day arithmetic for review scheduling: weekends and listed holidays do not count.

``add_business_days`` and ``business_days_between`` are inverses: for ``n > 0``,
``business_days_between(d, add_business_days(d, n, h), h) == n``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date, timedelta

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
