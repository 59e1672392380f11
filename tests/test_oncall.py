"""On-call resolution: rotation, handoffs at local wall-clock time across DST, overrides.

Expected users and instants are worked out by hand (day and week counts from the epoch are
in the comments), so the tables do not restate the code under test.
"""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.oncall import next_handoff, on_call, shift_bounds
from schemas.policy import Override, Schedule

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

WEEKLY_BERLIN = Schedule(
    name="primary",
    users=["alice", "bob", "carol"],
    shift=timedelta(days=7),
    handoff=time(9, 0),
    zone="Europe/Berlin",
    start=datetime(2024, 1, 1),  # a Monday; a bare date means "at the handoff time"
)
DAILY_NEW_YORK = Schedule(
    name="secondary",
    users=["dave", "erin", "frank"],
    shift=timedelta(days=1),
    handoff=time(9, 0),
    zone="America/New_York",
    start=datetime(2024, 1, 1),
)
TWELVE_HOURS_BERLIN = Schedule(
    name="follow-the-sun",
    users=["xavier", "yvonne"],
    shift=timedelta(hours=12),
    handoff=time(9, 0),
    zone="Europe/Berlin",
    start=datetime(2024, 3, 30, 9, 0),  # 08:00Z, the day before clocks go forward
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str, zone: ZoneInfo) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


CASES = [
    # weekly, Berlin (CET = UTC+1, CEST = UTC+2); week n starts Monday 2024-01-01 + 7n
    ("weekly: first shift starts at the handoff", WEEKLY_BERLIN, utc("2024-01-01T08:00"), "alice"),
    (
        "weekly: before the epoch the rotation runs backwards",
        WEEKLY_BERLIN,
        utc("2024-01-01T07:59"),
        "carol",
    ),
    ("weekly: last minute of week 0", WEEKLY_BERLIN, utc("2024-01-08T07:59"), "alice"),
    ("weekly: week 1 at the handoff", WEEKLY_BERLIN, utc("2024-01-08T08:00"), "bob"),
    ("weekly: week 2", WEEKLY_BERLIN, utc("2024-01-17T12:00"), "carol"),
    ("weekly: week 3 wraps round", WEEKLY_BERLIN, utc("2024-01-22T08:00"), "alice"),
    # clocks go forward Sun 2024-03-31; Mon 04-01 09:00 CEST = 07:00Z starts week 13 (bob)
    ("weekly: DST spring, before 09:00 CEST", WEEKLY_BERLIN, utc("2024-04-01T06:59"), "alice"),
    ("weekly: DST spring, 09:00 CEST", WEEKLY_BERLIN, utc("2024-04-01T07:00"), "bob"),
    # clocks go back Sun 2024-10-27; Mon 10-28 09:00 CET = 08:00Z starts week 43 (bob)
    (
        "weekly: DST autumn, 09:00 CEST would be 08:00 CET",
        WEEKLY_BERLIN,
        utc("2024-10-28T07:59"),
        "alice",
    ),
    ("weekly: DST autumn, 09:00 CET", WEEKLY_BERLIN, utc("2024-10-28T08:00"), "bob"),
    # daily, New York (EST = UTC-5, EDT = UTC-4); day n is 2024-01-01 + n, user n % 3
    ("daily: day 0 at 09:00 EST", DAILY_NEW_YORK, utc("2024-01-01T14:00"), "dave"),
    ("daily: day 1", DAILY_NEW_YORK, utc("2024-01-02T14:00"), "erin"),
    (
        "daily: still day 1 just before 09:00 on day 2",
        DAILY_NEW_YORK,
        utc("2024-01-03T13:59"),
        "erin",
    ),
    # clocks go forward Sun 2024-03-10 (day 69, dave); 09:00 EDT = 13:00Z
    ("daily: DST spring, 08:59 EDT", DAILY_NEW_YORK, utc("2024-03-10T12:59"), "frank"),
    ("daily: DST spring, 09:00 EDT", DAILY_NEW_YORK, utc("2024-03-10T13:00"), "dave"),
    # clocks go back Sun 2024-11-03 (day 307, erin); 09:00 EST = 14:00Z
    ("daily: DST autumn, 08:59 EST", DAILY_NEW_YORK, utc("2024-11-03T13:59"), "dave"),
    ("daily: DST autumn, 09:00 EST", DAILY_NEW_YORK, utc("2024-11-03T14:00"), "erin"),
    # 12h shifts are exact: 08:00Z and 20:00Z, i.e. 10:00/22:00 local once DST starts
    ("12h: first shift", TWELVE_HOURS_BERLIN, utc("2024-03-30T08:00"), "xavier"),
    ("12h: second shift", TWELVE_HOURS_BERLIN, utc("2024-03-30T20:00"), "yvonne"),
    ("12h: 09:00 CEST is not a handoff", TWELVE_HOURS_BERLIN, utc("2024-03-31T07:59"), "yvonne"),
    ("12h: 10:00 CEST is", TWELVE_HOURS_BERLIN, utc("2024-03-31T08:00"), "xavier"),
]


@pytest.mark.parametrize(
    ("schedule", "at", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rotation(schedule: Schedule, at: datetime, expected: str) -> None:
    assert on_call(schedule, at) == [expected]
    # the answer does not depend on the zone the instant is expressed in
    assert on_call(schedule, at.astimezone(NEW_YORK)) == [expected]


HANDOFFS = [
    # (schedule, at, next handoff as local wall-clock time in the schedule's zone)
    (WEEKLY_BERLIN, utc("2024-03-28T12:00"), "2024-04-01T09:00"),  # across spring forward
    (WEEKLY_BERLIN, utc("2024-10-22T12:00"), "2024-10-28T09:00"),  # across fall back
    (WEEKLY_BERLIN, utc("2024-01-08T08:00"), "2024-01-15T09:00"),  # at a handoff: the next
    (DAILY_NEW_YORK, utc("2024-03-09T15:00"), "2024-03-10T09:00"),
    (DAILY_NEW_YORK, utc("2024-11-02T15:00"), "2024-11-03T09:00"),
    (DAILY_NEW_YORK, utc("2024-11-03T13:30"), "2024-11-03T09:00"),  # 08:30 EST
]


@pytest.mark.parametrize(("schedule", "at", "expected"), HANDOFFS)
def test_next_handoff_stays_at_local_nine(schedule: Schedule, at: datetime, expected: str) -> None:
    zone = ZoneInfo(schedule.zone)
    handoff = next_handoff(schedule, at)
    assert handoff.utcoffset() == timedelta(0)
    assert handoff == local(expected, zone)
    assert handoff.astimezone(zone).time() == time(9, 0)


def test_dst_shortens_the_shift_that_spans_it() -> None:
    """The shift containing spring-forward is an hour short, autumn's an hour long."""
    start, end = shift_bounds(WEEKLY_BERLIN, utc("2024-03-31T12:00"))
    assert end - start == timedelta(days=7, hours=-1)
    start, end = shift_bounds(DAILY_NEW_YORK, utc("2024-11-03T12:00"))
    assert (start, end) == (utc("2024-11-02T13:00"), utc("2024-11-03T14:00"))
    assert end - start == timedelta(hours=25)


def test_twelve_hour_next_handoff_is_absolute() -> None:
    assert next_handoff(TWELVE_HOURS_BERLIN, utc("2024-03-31T00:00")) == utc("2024-03-31T08:00")


def test_explicit_start_time_equals_bare_date() -> None:
    explicit = WEEKLY_BERLIN.model_copy(update={"start": datetime(2024, 1, 1, 9, 0)})
    for _, schedule, at, expected in CASES:
        if schedule is WEEKLY_BERLIN:
            assert on_call(explicit, at) == [expected]


def with_overrides(*overrides: Override) -> Schedule:
    return WEEKLY_BERLIN.model_copy(update={"overrides": list(overrides)})


def test_override_inside_a_shift() -> None:
    # week 0 is alice's; carol covers Wednesday 11:00-13:00 Berlin
    schedule = with_overrides(
        Override(user="carol", start=utc("2024-01-03T10:00"), end=utc("2024-01-03T12:00"))
    )
    assert on_call(schedule, utc("2024-01-03T09:59")) == ["alice"]
    assert on_call(schedule, utc("2024-01-03T10:00")) == ["carol"]
    assert on_call(schedule, utc("2024-01-03T11:59")) == ["carol"]
    assert on_call(schedule, utc("2024-01-03T12:00")) == ["alice"]  # end is exclusive
    # an override does not move the rotation's handoff
    assert next_handoff(schedule, utc("2024-01-03T11:00")) == utc("2024-01-08T08:00")


def test_latest_starting_override_wins() -> None:
    holiday = Override(user="bob", start=utc("2024-01-02T00:00"), end=utc("2024-01-06T00:00"))
    swap = Override(user="carol", start=utc("2024-01-03T10:00"), end=utc("2024-01-03T12:00"))
    for schedule in (with_overrides(holiday, swap), with_overrides(swap, holiday)):
        assert on_call(schedule, utc("2024-01-02T12:00")) == ["bob"]
        assert on_call(schedule, utc("2024-01-03T11:00")) == ["carol"]
        assert on_call(schedule, utc("2024-01-03T13:00")) == ["bob"]
        assert on_call(schedule, utc("2024-01-06T00:00")) == ["alice"]


def test_override_given_in_another_zone() -> None:
    schedule = with_overrides(
        Override(
            user="carol", start=local("2024-01-03T05:00", NEW_YORK), end=utc("2024-01-03T12:00")
        )
    )
    assert on_call(schedule, utc("2024-01-03T09:59")) == ["alice"]
    assert on_call(schedule, utc("2024-01-03T10:00")) == ["carol"]


def test_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        on_call(WEEKLY_BERLIN, datetime(2024, 1, 3, 12, 0))


instants = st.datetimes(
    min_value=datetime(2023, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(at=instants, schedule=st.sampled_from([WEEKLY_BERLIN, DAILY_NEW_YORK]))
def test_whole_day_shifts_always_hand_off_at_nine_local(at: datetime, schedule: Schedule) -> None:
    start, end = shift_bounds(schedule, at)
    zone = ZoneInfo(schedule.zone)
    assert start <= at < end
    assert start.astimezone(zone).time() == time(9, 0) == end.astimezone(zone).time()
    assert end.astimezone(zone).date() - start.astimezone(zone).date() == schedule.shift
    # one user for the whole shift, the next one right after it
    user = on_call(schedule, at)
    assert on_call(schedule, start) == user == on_call(schedule, end - timedelta(microseconds=1))
    users = schedule.users
    assert on_call(schedule, end) == [users[(users.index(user[0]) + 1) % len(users)]]
    assert next_handoff(schedule, at) == end
