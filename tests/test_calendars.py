"""The calendar module: business days (the review's meeting date) and business hours (the
SLA clocks), table- and property-tested across DST changes, holidays and week boundaries."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.calendars import (
    ALWAYS_CALENDAR,
    WEEKDAYS,
    Calendar,
    Interval,
    add_business_days,
    add_business_time,
    business_days_between,
    business_time_between,
    holiday_dates,
    is_business_day,
    is_working,
    next_working_instant,
)

# 2024-12-20 is a Friday; 2024-12-25/26 are holidays in the table below
XMAS = frozenset({date(2024, 12, 25), date(2024, 12, 26)})

ADD = [
    ("Mon + 1 = Tue", date(2024, 1, 8), 1, (), date(2024, 1, 9)),
    ("Fri + 1 = Mon", date(2024, 1, 5), 1, (), date(2024, 1, 8)),
    ("Fri + 5 = next Fri", date(2024, 1, 5), 5, (), date(2024, 1, 12)),
    ("Sat + 1 = Mon", date(2024, 1, 6), 1, (), date(2024, 1, 8)),
    ("Sat + 2 = Tue", date(2024, 1, 6), 2, (), date(2024, 1, 9)),
    ("Sun + 0 rolls to Mon", date(2024, 1, 7), 0, (), date(2024, 1, 8)),
    ("Wed + 0 = Wed", date(2024, 1, 10), 0, (), date(2024, 1, 10)),
    ("Thu + 5 over Christmas", date(2024, 12, 19), 5, XMAS, date(2024, 12, 30)),
    ("Tue + 1 onto a holiday skips it", date(2024, 12, 24), 1, XMAS, date(2024, 12, 27)),
    (
        "holiday on a weekend changes nothing",
        date(2024, 1, 5),
        1,
        {date(2024, 1, 6)},
        date(2024, 1, 8),
    ),
    ("Mon - 1 = Fri", date(2024, 1, 8), -1, (), date(2024, 1, 5)),
    ("Fri 27 Dec - 2 over Christmas", date(2024, 12, 27), -2, XMAS, date(2024, 12, 23)),
    ("Feb 29 of a leap year", date(2024, 2, 28), 1, (), date(2024, 2, 29)),
]


@pytest.mark.parametrize(
    ("start", "days", "holidays", "expected"), [c[1:] for c in ADD], ids=[c[0] for c in ADD]
)
def test_add_business_days(
    start: date, days: int, holidays: frozenset[date], expected: date
) -> None:
    assert add_business_days(start, days, holidays) == expected


BETWEEN = [
    (date(2024, 1, 8), date(2024, 1, 8), (), 0),
    (date(2024, 1, 5), date(2024, 1, 8), (), 1),  # Fri -> Mon
    (date(2024, 1, 6), date(2024, 1, 7), (), 0),  # a weekend
    (date(2024, 1, 1), date(2024, 12, 31), (), 261),  # 2024 has 262 weekdays; Jan 1 excluded
    (date(2024, 12, 20), date(2024, 12, 31), XMAS, 5),  # 23, 24, 27, 30, 31
    (date(2024, 1, 8), date(2024, 1, 5), (), -1),
]


@pytest.mark.parametrize(("start", "end", "holidays", "expected"), BETWEEN)
def test_business_days_between(
    start: date, end: date, holidays: frozenset[date], expected: int
) -> None:
    assert business_days_between(start, end, holidays) == expected


def test_is_business_day() -> None:
    assert is_business_day(date(2024, 12, 24), XMAS)
    assert not is_business_day(date(2024, 12, 25), XMAS)
    assert not is_business_day(date(2024, 12, 28))  # Saturday


def test_holiday_dates_from_policy_strings() -> None:
    assert holiday_dates(["2024-12-25", " 2024-12-26 ", date(2025, 1, 1)]) == {
        date(2024, 12, 25),
        date(2024, 12, 26),
        date(2025, 1, 1),
    }
    with pytest.raises(ValueError):
        holiday_dates(["25/12/2024"])


days = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))
holiday_sets = st.frozensets(days, max_size=20)


@given(start=days, n=st.integers(min_value=1, max_value=400), holidays=holiday_sets)
def test_between_inverts_add(start: date, n: int, holidays: frozenset[date]) -> None:
    end = add_business_days(start, n, holidays)
    assert is_business_day(end, holidays)
    assert business_days_between(start, end, holidays) == n


@given(start=days, span=st.integers(min_value=-60, max_value=60), holidays=holiday_sets)
def test_between_matches_counting_day_by_day(
    start: date, span: int, holidays: frozenset[date]
) -> None:
    end = start + timedelta(days=span)
    lo, hi = sorted((start, end))
    count = sum(
        is_business_day(lo + timedelta(days=k), holidays) for k in range(1, (hi - lo).days + 1)
    )
    assert business_days_between(start, end, holidays) == (count if end >= start else -count)


# ---------------------------------------------------------------------------- business hours

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS_9_TO_5 = {d: "09:00-17:00" for d in WEEKDAYS[:5]}
OFFICE = Calendar(
    name="office", zone="Europe/Berlin", hours=WEEKDAYS_9_TO_5, holidays=[date(2026, 12, 24)]
)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


HOURS = [
    ("inside hours", berlin(2026, 12, 21, 10), timedelta(hours=2), berlin(2026, 12, 21, 12)),
    (
        "ends at 17:00, not the next morning",
        berlin(2026, 12, 21, 9),
        timedelta(hours=8),
        berlin(2026, 12, 21, 17),
    ),
    (
        "Friday 18:00 + 1h is Monday 10:00",
        berlin(2026, 12, 18, 18),
        timedelta(hours=1),
        berlin(2026, 12, 21, 10),
    ),
    (
        "a holiday is skipped",
        berlin(2026, 12, 23, 16),
        timedelta(hours=2),
        berlin(2026, 12, 25, 10),
    ),
    (
        "before opening starts at opening",
        berlin(2026, 12, 22, 3),
        timedelta(minutes=30),
        berlin(2026, 12, 22, 9, 30),
    ),
    (
        "spring forward: a Monday still has 8h",
        berlin(2026, 3, 27, 17),
        timedelta(hours=9),
        berlin(2026, 3, 31, 10),
    ),
    (
        "fall back: across the weekend",
        berlin(2026, 10, 23, 16),
        timedelta(hours=2),
        berlin(2026, 10, 26, 10),
    ),
]


@pytest.mark.parametrize(
    ("start", "amount", "expected"), [c[1:] for c in HOURS], ids=[c[0] for c in HOURS]
)
def test_add_business_time(start: datetime, amount: timedelta, expected: datetime) -> None:
    assert add_business_time(start, amount, OFFICE) == expected
    assert add_business_time(start, amount, OFFICE).tzinfo == UTC


def test_a_pause_pushes_the_deadline_by_its_business_time() -> None:
    start = berlin(2026, 12, 21, 9)
    paused: list[Interval] = [(berlin(2026, 12, 21, 12), berlin(2026, 12, 22, 10))]
    # 3h before the pause, the evening does not count anyway, 1h of Tuesday paused
    assert add_business_time(start, timedelta(hours=8), OFFICE, paused) == berlin(2026, 12, 22, 15)
    assert business_time_between(start, berlin(2026, 12, 22, 15), OFFICE, paused) == timedelta(
        hours=8
    )


def test_lunch_breaks_and_24_00() -> None:
    cal = Calendar(name="split", hours={"mon": ["08:00-12:00", "13:00-24:00"]})
    monday = datetime(2026, 1, 5, 11, tzinfo=UTC)
    assert add_business_time(monday, timedelta(hours=2), cal) == datetime(
        2026, 1, 5, 14, tzinfo=UTC
    )
    assert add_business_time(monday, timedelta(hours=12), cal) == datetime(2026, 1, 6, tzinfo=UTC)
    assert not is_working(datetime(2026, 1, 5, 12, 30, tzinfo=UTC), cal)
    assert next_working_instant(datetime(2026, 1, 5, 12, 30, tzinfo=UTC), cal) == datetime(
        2026, 1, 5, 13, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ({"mon": "17:00-09:00"}, "end must be after"),
        ({"mon": "9-17"}, "HH:MM-HH:MM"),
        ({"mon": ["09:00-12:00", "11:00-13:00"]}, "overlap"),
        ({"funday": "09:00-17:00"}, "funday"),
        ({"mon": []}, "at least one day"),
    ],
)
def test_calendar_refuses_bad_hours(hours: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Calendar(name="bad", hours=hours)


def test_calendars_survive_json() -> None:
    assert Calendar.model_validate_json(OFFICE.model_dump_json()) == OFFICE
    assert ALWAYS_CALENDAR.is_always and not OFFICE.is_always


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"]
#: 2026 around every DST change of those zones
instants = st.datetimes(
    min_value=datetime(2026, 3, 1), max_value=datetime(2026, 11, 30), timezones=st.just(UTC)
)
spans = st.sampled_from(
    ["09:00-17:00", "00:00-24:00", "01:30-03:30", "22:00-24:00", "08:00-12:00", "02:00-02:30"]
)


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    days = draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True))
    holidays = draw(
        st.lists(st.dates(date(2026, 3, 1), date(2026, 12, 31)), max_size=15, unique=True)
    )
    return Calendar(
        name="drawn",
        zone=draw(st.sampled_from(ZONES)),
        hours={d: [draw(spans)] for d in days},
        holidays=holidays,
    )


amounts = st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=4))


@settings(max_examples=150, deadline=None)
@given(cal=calendars(), start=instants, amount=amounts)
def test_business_time_between_inverts_add(
    cal: Calendar, start: datetime, amount: timedelta
) -> None:
    end = add_business_time(start, amount, cal)
    assert end > start
    assert business_time_between(start, end, cal) == amount
    # the deadline falls in working time (or at its very end), never in the closed hours after
    assert is_working(end - timedelta(microseconds=1), cal)


@settings(max_examples=100, deadline=None)
@given(cal=calendars(), start=instants, a=amounts, b=amounts)
def test_adding_is_additive_and_monotone(
    cal: Calendar, start: datetime, a: timedelta, b: timedelta
) -> None:
    assert add_business_time(add_business_time(start, a, cal), b, cal) == add_business_time(
        start, a + b, cal
    )
    assert add_business_time(start, min(a, b), cal) <= add_business_time(start, max(a, b), cal)


@settings(max_examples=100, deadline=None)
@given(cal=calendars(), start=instants, amount=amounts, pause=st.tuples(instants, amounts))
def test_a_clock_resumes_with_the_time_it_had_left(
    cal: Calendar, start: datetime, amount: timedelta, pause: tuple[datetime, timedelta]
) -> None:
    """Pausing at any instant before the deadline and resuming later: the net business time
    from start to the new deadline is the whole amount, and what was left at the pause is
    what is left at the resume."""
    deadline = add_business_time(start, amount, cal)
    paused_at = min(max(pause[0], start), deadline)
    resumed_at = paused_at + pause[1]
    spans: list[Interval] = [(paused_at, resumed_at)]
    moved = add_business_time(start, amount, cal, spans)
    assert moved >= deadline
    assert business_time_between(start, moved, cal, spans) == amount
    left = business_time_between(paused_at, deadline, cal)
    assert business_time_between(resumed_at, max(moved, resumed_at), cal) == left


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES[:3]),
    monday=st.dates(date(2026, 1, 5), date(2026, 12, 28)).map(
        lambda d: d - timedelta(days=d.weekday())
    ),
)
def test_a_9_to_5_week_is_40_hours_across_dst(zone: str, monday: date) -> None:
    cal = Calendar(name="office", zone=zone, hours=WEEKDAYS_9_TO_5)
    tz = ZoneInfo(zone)
    start = datetime.combine(monday, datetime.min.time(), tzinfo=tz)
    end = datetime.combine(monday + timedelta(days=7), datetime.min.time(), tzinfo=tz)
    assert business_time_between(start, end, cal) == timedelta(hours=40)
    assert add_business_time(start, timedelta(hours=40), cal) == datetime.combine(
        monday + timedelta(days=4), datetime.min.time().replace(hour=17), tzinfo=tz
    ).astimezone(UTC)


@settings(max_examples=60, deadline=None)
@given(start=instants, amount=amounts)
def test_24x7_is_plain_arithmetic(start: datetime, amount: timedelta) -> None:
    assert add_business_time(start, amount) == start + amount
    full = Calendar(name="all", zone="Europe/Berlin", hours={d: "00:00-24:00" for d in WEEKDAYS})
    assert add_business_time(start, amount, full) == start + amount


@settings(max_examples=60, deadline=None)
@given(cal=calendars(), day=st.dates(date(2026, 3, 1), date(2026, 12, 31)))
def test_a_holiday_counts_nothing(cal: Calendar, day: date) -> None:
    cal = cal.model_copy(update={"holidays": [day]})
    tz = cal.tz
    start = datetime.combine(day, datetime.min.time(), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    assert business_time_between(start, end, cal) == timedelta(0)
