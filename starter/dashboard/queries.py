"""The dashboard's own read-side SQL: the board (open incidents first, with their clocks)
and MTTA/MTTR per severity per week. Everything else comes from ``starter.tickets_read``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from schemas.calendars import Calendar, business_time_between
from schemas.enums import Clock, Severity, Status
from schemas.incident import Breach, Deadlines
from schemas.lifecycle import OPEN_STATUSES
from starter import knowledge_read, time_text

Pool = AsyncConnectionPool[psycopg.AsyncConnection]

#: the clocks whose deadline the board counts down to (escalation is not an SLA)
SLA_CLOCKS = (Clock.ACK, Clock.MITIGATE, Clock.RESOLVE, Clock.UPDATE)


class BoardFilters(BaseModel):
    #: "open" (default), "all", or one status
    status: str = "open"
    severity: Severity | None = None
    service: str | None = None
    q: str | None = Field(
        default=None,
        max_length=200,
        description="words in the incident's text or postmortem, or part of its title",
    )


class BoardRow(BaseModel):
    number: str
    title: str
    service: str
    status: Status
    severity: Severity
    priority: str
    commander: str | None = None
    escalation_level: int = 0
    alert_count: int = 1
    drill: bool = False
    created_at: datetime
    deadlines: Deadlines = Field(default_factory=Deadlines)
    breaches: list[Breach] = Field(default_factory=list)
    #: the reason of the pause in force (docs/sla.md), ``None`` while the clocks run
    paused_reason: str | None = None
    #: the calendar of each clock that does not count 24x7 (docs/sla.md)
    clock_calendars: dict[Clock, Calendar] = Field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def next_deadline(self) -> tuple[Clock, datetime] | None:
        """The SLA clock that runs out first, if any is running."""
        running = [
            (clock, at) for clock in SLA_CLOCKS if (at := self.deadlines.get(clock)) is not None
        ]
        return min(running, key=lambda pair: pair[1]) if running else None

    def business_left(self, clock: Clock, now: datetime) -> str:
        """``3h 0m business (berlin-office)`` for a clock on a calendar, else ``""``."""
        calendar = self.clock_calendars.get(clock)
        deadline = self.deadlines.get(clock)
        if calendar is None or deadline is None or deadline <= now:
            return ""
        left = business_time_between(now, deadline, calendar).total_seconds()
        return f"{time_text.short(left)} business ({calendar.name})"

    @property
    def breached_clocks(self) -> list[str]:
        return sorted({b.clock.value for b in self.breaches})


_BOARD = """
SELECT number, title, service, status, severity, priority, commander, escalation_level,
       alert_count, created_at, breaches, drill,
       COALESCE(snapshot->'deadlines', '{}'::jsonb) AS deadlines, paused_reason,
       COALESCE(snapshot->'clock_calendars', '{}'::jsonb) AS clock_calendars
  FROM incidents
 WHERE ({status_clause})
   AND (%(severity)s::text IS NULL OR severity = %(severity)s::text)
   AND (%(service)s::text IS NULL OR service = %(service)s::text)
   AND ({search_clause})
 ORDER BY (status = ANY(%(open)s)) DESC, severity, created_at DESC, number_seq DESC
 LIMIT %(limit)s
"""


async def board(pool: Pool, filters: BoardFilters, *, limit: int = 200) -> list[BoardRow]:
    """Incidents for the board: open ones first, then by severity and age."""
    params: dict[str, Any] = {
        "severity": filters.severity.value if filters.severity else None,
        "service": filters.service or None,
        "open": [s.value for s in OPEN_STATUSES],
        "limit": limit,
    }
    if filters.status == "open":
        status_clause = "status = ANY(%(open)s)"
    elif filters.status == "all":
        status_clause = "TRUE"
    else:
        status_clause = "status = %(status)s"
        params["status"] = Status(filters.status).value
    search_clause = "TRUE"
    if filters.q:
        search_clause = knowledge_read.MATCH
        params.update(knowledge_read.match_params(filters.q))
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        query = _BOARD.replace("{status_clause}", status_clause)
        await cur.execute(query.replace("{search_clause}", search_clause), params)
        rows = await cur.fetchall()
    return [BoardRow.model_validate(r) for r in rows]


async def services(pool: Pool) -> list[str]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT DISTINCT service FROM incidents ORDER BY service")
        return [r[0] for r in await cur.fetchall()]


class WeekTimes(BaseModel):
    week: datetime
    severity: Severity
    count: int
    mtta_seconds: float | None = None
    mttr_seconds: float | None = None


_WEEKLY = """
SELECT date_trunc('week', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS week,
       severity, count(*) AS count,
       EXTRACT(EPOCH FROM avg(acknowledged_at - created_at)) AS mtta_seconds,
       EXTRACT(EPOCH FROM avg(resolved_at - created_at)) AS mttr_seconds
  FROM incidents
 WHERE (%(since)s::timestamptz IS NULL OR created_at >= %(since)s::timestamptz)
   AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s::timestamptz)
   AND (%(service)s::text IS NULL OR service = %(service)s::text)
   AND (%(include_drills)s::boolean OR NOT drill)
 GROUP BY 1, 2
 ORDER BY 1, 2
"""


async def weekly_times(
    pool: Pool,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    service: str | None = None,
    include_drills: bool = False,
) -> list[WeekTimes]:
    """MTTA and MTTR per ISO week (Monday, UTC) and severity, of incidents created then
    (drills only when ``include_drills``)."""
    params = {"since": since, "until": until, "service": service, "include_drills": include_drills}
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_WEEKLY, params)
        rows = await cur.fetchall()
    return [WeekTimes.model_validate(r) for r in rows]
