"""When reviews happen, are reminded of and become overdue (schemas.review_schedule)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.calendars import business_days_between, is_business_day
from schemas.policy import ReviewPolicy
from schemas.review import (
    ActionItem,
    ActionItemChange,
    ActionItemStatus,
    action_item_problem,
)
from schemas.review_schedule import (
    action_item_due,
    action_item_reminder_at,
    overdue_at,
    plan_review,
    reminder_due_dates,
    reminder_instants,
    review_start,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


def policy(**kw: Any) -> ReviewPolicy:
    return ReviewPolicy.model_validate({"meeting_time": "14:00", "zone": "Europe/Berlin", **kw})


START = [
    (
        "SEV1 resolved Friday, review_after 2 -> Tuesday 14:00 Berlin",
        at(BERLIN, 2026, 3, 6, 16, 30),
        2,
        {},
        at(BERLIN, 2026, 3, 10, 14, 0),
    ),
    (
        "resolved Saturday counts from Saturday: +2 = Tuesday",
        at(BERLIN, 2026, 3, 7, 11, 0),
        2,
        {},
        at(BERLIN, 2026, 3, 10, 14, 0),
    ),
    (
        "the local date decides: 23:30 UTC Friday is Saturday in Berlin",
        datetime(2026, 3, 6, 23, 30, tzinfo=UTC),
        1,
        {},
        at(BERLIN, 2026, 3, 9, 14, 0),
    ),
    (
        "a holiday on the target day moves it on",
        at(BERLIN, 2026, 3, 6, 10, 0),
        2,
        {"holidays": ["2026-03-10"]},
        at(BERLIN, 2026, 3, 11, 14, 0),
    ),
    (
        "year end: Wed 30 Dec + 2 over New Year's Day = Mon 4 Jan",
        at(BERLIN, 2026, 12, 30, 9, 0),
        2,
        {"holidays": ["2027-01-01"]},
        at(BERLIN, 2027, 1, 4, 14, 0),
    ),
    (
        "Christmas week: Thu 24 Dec + 1 with 25 Dec holiday = Mon 28 Dec",
        at(BERLIN, 2026, 12, 24, 12, 0),
        1,
        {"holidays": ["2026-12-25"]},
        at(BERLIN, 2026, 12, 28, 14, 0),
    ),
    (
        "review_after 0 before the meeting time: the same day",
        at(BERLIN, 2026, 3, 9, 10, 0),
        0,
        {},
        at(BERLIN, 2026, 3, 9, 14, 0),
    ),
    (
        "review_after 0 after the meeting time: the next business day",
        at(BERLIN, 2026, 3, 6, 15, 0),
        0,
        {},
        at(BERLIN, 2026, 3, 9, 14, 0),
    ),
    (
        "review_after 0 on a Sunday: Monday",
        at(BERLIN, 2026, 3, 8, 9, 0),
        0,
        {},
        at(BERLIN, 2026, 3, 9, 14, 0),
    ),
    (
        "meeting time in the policy zone, not UTC (New York, DST in effect)",
        at(NEW_YORK, 2026, 7, 2, 12, 0),
        1,
        {"zone": "America/New_York", "meeting_time": "10:30"},
        at(NEW_YORK, 2026, 7, 3, 10, 30),
    ),
    (
        "across a DST change the wall-clock time holds (CET -> CEST)",
        at(BERLIN, 2026, 3, 27, 12, 0),
        1,
        {},
        at(BERLIN, 2026, 3, 30, 14, 0),
    ),
    (
        "an unknown zone falls back to UTC",
        datetime(2026, 3, 6, 12, 0, tzinfo=UTC),
        2,
        {"zone": "Mars/Olympus_Mons"},
        datetime(2026, 3, 10, 14, 0, tzinfo=UTC),
    ),
]


@pytest.mark.parametrize(
    ("resolved", "after", "overrides", "expected"),
    [c[1:] for c in START],
    ids=[c[0] for c in START],
)
def test_review_start(
    resolved: datetime, after: int, overrides: dict[str, Any], expected: datetime
) -> None:
    start = review_start(resolved, after, policy(**overrides))
    assert start == expected
    assert start.tzinfo == UTC


def test_review_start_never_before_not_before() -> None:
    """A hand-over that comes late (long reopen window) never schedules in the past."""
    resolved = at(BERLIN, 2026, 3, 6, 10, 0)  # Friday; +1 = Monday 14:00
    now = at(BERLIN, 2026, 3, 9, 15, 0)  # Monday, after the meeting time
    assert review_start(resolved, 1, policy(), not_before=now) == at(BERLIN, 2026, 3, 10, 14, 0)


@given(
    resolved=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
    ),
    after=st.integers(min_value=1, max_value=30),
)
def test_review_start_is_after_days_business_days_at_meeting_time(
    resolved: datetime, after: int
) -> None:
    review = policy(holidays=["2026-12-25", "2027-01-01"])
    holidays = {date(2026, 12, 25), date(2027, 1, 1)}
    start = review_start(resolved, after, review).astimezone(BERLIN)
    assert start.time() == time(14, 0)
    assert is_business_day(start.date(), holidays)
    assert (
        business_days_between(resolved.astimezone(BERLIN).date(), start.date(), holidays) == after
    )


OVERDUE = [
    (
        "meeting Tuesday, 2 business days -> Thursday at the meeting's end time",
        at(BERLIN, 2026, 3, 10, 15, 0),
        {"overdue_after_business_days": 2},
        at(BERLIN, 2026, 3, 12, 15, 0),
    ),
    (
        "meeting Thursday, 2 business days over the weekend -> Monday",
        at(BERLIN, 2026, 3, 12, 15, 0),
        {"overdue_after_business_days": 2},
        at(BERLIN, 2026, 3, 16, 15, 0),
    ),
    (
        "a holiday is skipped",
        at(BERLIN, 2026, 12, 23, 15, 0),
        {"overdue_after_business_days": 2, "holidays": ["2026-12-24", "2026-12-25"]},
        at(BERLIN, 2026, 12, 29, 15, 0),
    ),
    (
        "0: overdue as soon as the meeting ended, weekend or not",
        at(BERLIN, 2026, 3, 7, 15, 0),
        {"overdue_after_business_days": 0},
        at(BERLIN, 2026, 3, 7, 15, 0),
    ),
]


@pytest.mark.parametrize(
    ("end", "overrides", "expected"), [c[1:] for c in OVERDUE], ids=[c[0] for c in OVERDUE]
)
def test_overdue_at(end: datetime, overrides: dict[str, Any], expected: datetime) -> None:
    assert overdue_at(end, policy(**overrides)) == expected


def test_reminders_only_ahead_and_ascending() -> None:
    start = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
    offsets = [timedelta(hours=1), timedelta(hours=24), timedelta(hours=1), timedelta(0)]
    now = start - timedelta(hours=2)
    assert reminder_instants(start, offsets, now) == [start - timedelta(hours=1)]
    now = start - timedelta(days=3)
    assert reminder_instants(start, offsets, now) == [
        start - timedelta(hours=24),
        start - timedelta(hours=1),
    ]
    assert reminder_instants(start, offsets, start) == []


def test_plan_review_combines_the_clocks() -> None:
    review = policy(duration="45m", reminders=["24h", "15m"], overdue_after_business_days=2)
    start = at(BERLIN, 2026, 3, 10, 14, 0)
    plan = plan_review(start, review, now=start - timedelta(hours=2))
    assert plan.start == start and plan.start.tzinfo == UTC
    assert plan.end == start + timedelta(minutes=45)
    assert plan.reminders == [start - timedelta(minutes=15)]
    assert plan.overdue_at == at(BERLIN, 2026, 3, 12, 14, 45)
    assert plan.zone == "Europe/Berlin"


def test_action_item_reminders() -> None:
    assert action_item_reminder_at(date(2026, 3, 10), policy()) == at(BERLIN, 2026, 3, 10, 9, 0)
    dues = [date(2026, 4, 1), None, date(2026, 3, 1), date(2026, 4, 1)]
    assert reminder_due_dates(dues) == [date(2026, 3, 1), date(2026, 4, 1)]


def test_action_item_due_date_or_instant_in_the_review_zone() -> None:
    review = policy()
    # a bare date: due (and reminded) at 09:00 in the zone
    assert action_item_due(date(2026, 3, 10), None, review) == (
        date(2026, 3, 10),
        at(BERLIN, 2026, 3, 10, 9, 0),
    )
    # an instant wins; its date is read in the zone (01:30 Berlin is still the 11th there)
    instant = datetime(2026, 3, 11, 0, 30, tzinfo=UTC)
    assert action_item_due(date(2026, 1, 1), instant, review) == (date(2026, 3, 11), instant)
    assert action_item_due(None, None, review) == (None, None)
    # the calendar's edge clamps instead of overflowing (the workflow must never raise)
    east = timezone(timedelta(hours=5))
    assert action_item_due(None, datetime(1, 1, 1, tzinfo=east), review)[1] == datetime.min.replace(
        tzinfo=UTC
    )
    west = timezone(timedelta(hours=-5))
    late = datetime(9999, 12, 31, 23, tzinfo=west)
    assert action_item_due(None, late, review)[1] == datetime.max.replace(tzinfo=UTC)


def test_closed_action_items_must_be_reopened_to_be_replanned() -> None:
    item = ActionItem(id=3, number="INC-1", owner="bob", title="t", status="done")
    reassign = ActionItemChange(actor="bob", id=3, owner="carol")
    assert action_item_problem(item, reassign) == (
        "action item 3 is done: reopen it (status open) to change its owner or due date"
    )
    reopen = reassign.model_copy(update={"status": ActionItemStatus.OPEN})
    assert action_item_problem(item, reopen) is None
    assert (
        action_item_problem(item, ActionItemChange(actor="bob", id=3, status="cancelled")) is None
    )
    open_item = item.model_copy(update={"status": "open"})
    assert action_item_problem(open_item, reassign) is None
