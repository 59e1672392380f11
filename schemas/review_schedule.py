"""When a post-incident review happens, is reminded of and becomes overdue: pure functions.

Business days (weekends and the policy's holidays skipped) are counted on the calendar of
the review's time zone, so an incident resolved late on Friday evening in Berlin is a Friday
incident even though it is already Saturday in Tokyo. Every instant returned is UTC.

The workflow calls these with ``workflow.now()``; they are table-tested in
``tests/test_review_schedule.py`` because a real schedule is days away.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel

from schemas.calendars import add_business_days, holiday_dates
from schemas.policy import ReviewPolicy

#: local time of day at which an action item's due-date reminder goes out
ACTION_ITEM_REMINDER_TIME = time(9, 0)


class ReviewPlan(BaseModel):
    """One meeting and the clocks around it."""

    start: datetime
    end: datetime
    #: reminder instants still ahead when the plan was made, ascending
    reminders: list[datetime]
    overdue_at: datetime
    #: the zone actually used (UTC when the policy names an unknown zone)
    zone: str


def zone_named(name: str) -> ZoneInfo | None:
    """The IANA zone ``name``, or ``None`` when this machine's tz database lacks it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def review_zone(review: ReviewPolicy) -> tuple[str, ZoneInfo]:
    """The review's zone; an unknown name falls back to UTC (and says so by its name)."""
    zone = zone_named(review.zone)
    if zone is None:
        return "UTC", ZoneInfo("UTC")
    return review.zone, zone


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """``day`` at wall-clock ``at`` in ``zone``, as UTC.

    A wall-clock time that does not exist (the hour skipped when DST starts) is read with
    the offset before the change, so it lands one hour later in the new offset, as
    calendar applications do.
    """
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def review_start(
    resolved_at: datetime,
    review_after: int,
    review: ReviewPolicy,
    *,
    not_before: datetime | None = None,
) -> datetime:
    """The meeting: ``review_after`` business days after the (local) resolution date, at the
    policy's meeting time.

    When that instant is not after ``not_before`` (default: the resolution itself; e.g.
    ``review_after: 0`` and resolved after the meeting time) the meeting moves to the next
    business day, so a review is never scheduled in the past.
    """
    _, zone = review_zone(review)
    holidays = holiday_dates(review.holidays)
    floor = resolved_at if not_before is None else not_before
    day = add_business_days(resolved_at.astimezone(zone).date(), review_after, holidays)
    start = local_instant(day, review.meeting_time, zone)
    while start <= floor:
        day = add_business_days(day, 1, holidays)
        start = local_instant(day, review.meeting_time, zone)
    return start


def overdue_at(end: datetime, review: ReviewPolicy) -> datetime:
    """When an uncompleted review becomes overdue: ``overdue_after_business_days`` business
    days after the meeting's (local) date, at the meeting's end time of day.

    ``0`` means "as soon as the meeting has ended", weekday or not: there is no business
    day to count.
    """
    days = review.overdue_after_business_days
    if days <= 0:
        return end.astimezone(UTC)
    _, zone = review_zone(review)
    local_end = end.astimezone(zone)
    day = add_business_days(local_end.date(), days, holiday_dates(review.holidays))
    return local_instant(day, local_end.time(), zone)


def reminder_instants(
    start: datetime, offsets: Iterable[timedelta], now: datetime
) -> list[datetime]:
    """``start - offset`` for each offset, keeping only instants after ``now``, ascending.

    A reminder whose moment has already passed when the meeting is (re)scheduled is dropped
    rather than sent at once: the invite that goes out at that moment says the same.
    """
    instants = {(start - offset).astimezone(UTC) for offset in offsets if offset > timedelta(0)}
    return sorted(t for t in instants if now < t < start)


def plan_review(start: datetime, review: ReviewPolicy, now: datetime) -> ReviewPlan:
    """Everything the review workflow times from one meeting start."""
    name, _ = review_zone(review)
    start = start.astimezone(UTC)
    end = start + review.duration
    return ReviewPlan(
        start=start,
        end=end,
        reminders=reminder_instants(start, review.reminders, now),
        overdue_at=overdue_at(end, review),
        zone=name,
    )


def action_item_reminder_at(due: date, review: ReviewPolicy) -> datetime:
    """The due-date reminder of an action item: its due date, 09:00 in the review zone."""
    _, zone = review_zone(review)
    return local_instant(due, ACTION_ITEM_REMINDER_TIME, zone)


def reminder_due_dates(dues: Collection[date | None]) -> list[date]:
    """The distinct due dates of some action items, ascending (items without one skipped)."""
    return sorted({d for d in dues if d is not None})


def action_item_due(
    due_date: date | None, due_at: datetime | None, review: ReviewPolicy
) -> tuple[date | None, datetime | None]:
    """An action item's (local due date, due instant): an explicit instant wins (its date
    read in the review zone); a bare date is due at 09:00 in the review zone. Never raises:
    a value at the calendar's edge is clamped to it."""
    _, zone = review_zone(review)
    try:
        if due_at is not None:
            at = due_at.astimezone(UTC)
            return at.astimezone(zone).date(), at
        if due_date is not None:
            return due_date, action_item_reminder_at(due_date, review)
    except OverflowError:
        # past the calendar's edge once moved to UTC: the edge itself (never, or long ago)
        at = datetime.max if (due_at or due_date or date.max).year > 1 else datetime.min
        return at.date(), at.replace(tzinfo=UTC)
    return None, None
