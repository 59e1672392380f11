"""Each SLA clock of an incident as the CLI and the dashboard show it: running (a countdown,
in business time with its calendar's name where the clock does not count 24x7), paused
(with the business time it has left), met, breached or not running."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from schemas.calendars import ALWAYS, business_time_between
from schemas.enums import Clock
from schemas.incident import Breach, IncidentSnapshot
from starter import time_text


class ClockState(BaseModel):
    clock: Clock
    deadline: datetime | None = None
    breach: Breach | None = None
    met_at: datetime | None = None
    #: the calendar the clock counts in
    calendar: str = ALWAYS
    #: working time until the deadline (a clock on a business calendar)
    business_left: timedelta | None = None
    #: working time the clock had left when it was paused
    paused_left: timedelta | None = None

    @property
    def business_text(self) -> str:
        """``8h 0m business time (berlin-office)``, or ``""`` for a 24x7 clock."""
        if self.paused_left is not None:
            return f"paused, {time_text.short(self.paused_left.total_seconds())} left"
        if self.business_left is None:
            return ""
        left = time_text.short(self.business_left.total_seconds())
        return f"{left} business time left ({self.calendar})"


def clock_states(snapshot: IncidentSnapshot, now: datetime) -> list[ClockState]:
    breached = {b.clock: b for b in snapshot.breaches}
    met_at = {
        Clock.ACK: snapshot.acknowledged_at,
        Clock.MITIGATE: snapshot.mitigated_at,
        Clock.RESOLVE: snapshot.resolved_at,
        Clock.UPDATE: snapshot.last_status_update_at,
    }
    paused = snapshot.paused.left if snapshot.paused else {}
    states = []
    for clock in (Clock.ACK, Clock.MITIGATE, Clock.RESOLVE, Clock.UPDATE):
        deadline = snapshot.deadlines.get(clock)
        calendar = snapshot.clock_calendars.get(clock)
        business_left = None
        if deadline is not None and calendar is not None and deadline > now:
            business_left = business_time_between(now, deadline, calendar)
        states.append(
            ClockState(
                clock=clock,
                deadline=deadline,
                breach=breached.get(clock),
                met_at=met_at[clock],
                calendar=calendar.name if calendar else ALWAYS,
                business_left=business_left,
                paused_left=timedelta(seconds=paused[clock]) if clock in paused else None,
            )
        )
    return states
