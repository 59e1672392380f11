"""Business-day arithmetic used to date post-incident reviews."""

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.business_days import (
    add_business_days,
    business_days_between,
    holiday_dates,
    is_business_day,
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
