"""Trends and recurring problems over the ticket store (``GET /api/v1/reports/trends``,
``…/recurring``, the dashboard's reports page). Drills are left out unless asked for."""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

Pool = AsyncConnectionPool[psycopg.AsyncConnection]

#: how many services "noisiest" lists
NOISIEST = 5


class WeekFigures(BaseModel):
    """Incidents created in one ISO week (Monday, UTC) for one service or category."""

    week: datetime
    key: str
    count: int
    mtta_seconds: float | None = None
    mttr_seconds: float | None = None


class WeekOverWeek(BaseModel):
    """The last week of the range against the one before, for one service."""

    service: str
    this_week: int
    last_week: int
    change: int
    #: change / last_week; null when last week had none
    change_ratio: float | None = None


class NoisyService(BaseModel):
    service: str
    incidents: int
    #: alerts counted against its incidents (repeats included)
    alerts: int
    #: incidents closed as duplicates (merged) or cancelled as false alarms
    noise: int


class Trends(BaseModel):
    weeks: list[datetime]
    by_service: list[WeekFigures]
    by_category: list[WeekFigures]
    week_over_week: list[WeekOverWeek]
    noisiest: list[NoisyService]
    include_drills: bool = False


class RecurringGroup(BaseModel):
    """Incidents that recur: the same service and dedup-key family, or titles alike once
    their numbers are masked, ``min_count`` times or more in the window."""

    service: str
    #: what the group shares: ``family disk-full:db-#`` or ``title disk full on db-#``
    key: str
    count: int
    first_seen: datetime
    last_seen: datetime
    #: the newest incidents of the group, newest first (at most 10)
    numbers: list[str]
    open: int
    #: time to resolve of the group's most recently resolved incident
    last_time_to_resolve_seconds: float | None = None


class Recurring(BaseModel):
    days: int
    min_count: int
    groups: list[RecurringGroup] = Field(default_factory=list)


_SCOPE = """
WITH scope AS (
    SELECT *, date_trunc('week', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS week
      FROM incidents
     WHERE created_at >= %(since)s
       AND (%(service)s::text IS NULL OR service = %(service)s::text)
       AND (%(include_drills)s::boolean OR NOT drill)
)
"""

_BY = (
    _SCOPE
    + """
SELECT week, {key} AS key, count(*) AS count,
       EXTRACT(EPOCH FROM avg(acknowledged_at - created_at)) AS mtta_seconds,
       EXTRACT(EPOCH FROM avg(resolved_at - created_at)) AS mttr_seconds
  FROM scope GROUP BY 1, 2 ORDER BY 1, 2
"""
)

_NOISIEST = (
    _SCOPE
    + """
SELECT service, count(*) AS incidents, sum(alert_count) AS alerts,
       count(*) FILTER (WHERE snapshot->>'merged_into' IS NOT NULL
                        OR snapshot->>'close_reason' LIKE 'cancelled:%%') AS noise
  FROM scope GROUP BY service
 ORDER BY sum(alert_count) DESC, count(*) DESC, service
 LIMIT %(limit)s
"""
)

#: the group key: the dedup-key family where there is one, else the title with numbered
#: tokens masked as the family masks them (``incident_dedup_family``)
_RECURRING = """
WITH scope AS (
    SELECT number, number_seq, service, created_at, resolved_at, status,
           CASE WHEN dedup_family IS NOT NULL THEN 'family ' || dedup_family
                ELSE 'title ' || incident_dedup_family(title) END AS key
      FROM incidents
     WHERE created_at >= now() - make_interval(days => %(days)s)
       AND (%(service)s::text IS NULL OR service = %(service)s::text)
       AND (%(include_drills)s::boolean OR NOT drill)
)
SELECT service, key, count(*) AS count, min(created_at) AS first_seen,
       max(created_at) AS last_seen,
       (array_agg(number ORDER BY created_at DESC, number_seq DESC))[1:10] AS numbers,
       count(*) FILTER (WHERE status NOT IN ('resolved', 'closed')) AS open,
       EXTRACT(EPOCH FROM (array_agg(resolved_at - created_at ORDER BY resolved_at DESC)
                           FILTER (WHERE resolved_at IS NOT NULL))[1])
           AS last_time_to_resolve_seconds
  FROM scope
 WHERE key IS NOT NULL
 GROUP BY service, key
HAVING count(*) >= %(min_count)s
 ORDER BY count(*) DESC, max(created_at) DESC, service, key
"""


async def trends(
    pool: Pool,
    *,
    since: datetime,
    service: str | None = None,
    include_drills: bool = False,
) -> Trends:
    """Counts, MTTA and MTTR per week by service and by category since ``since``, the last
    week against the one before per service, and the noisiest services."""
    params = {"since": since, "service": service, "include_drills": include_drills}
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_BY.replace("{key}", "service"), params)
        by_service = [WeekFigures.model_validate(r) for r in await cur.fetchall()]
        await cur.execute(_BY.replace("{key}", "category"), params)
        by_category = [WeekFigures.model_validate(r) for r in await cur.fetchall()]
        await cur.execute(_NOISIEST, {**params, "limit": NOISIEST})
        noisiest = [NoisyService.model_validate(r) for r in await cur.fetchall()]
    weeks = sorted({w.week for w in by_service})
    return Trends(
        weeks=weeks,
        by_service=by_service,
        by_category=by_category,
        week_over_week=week_over_week(by_service, weeks),
        noisiest=noisiest,
        include_drills=include_drills,
    )


def week_over_week(by_service: list[WeekFigures], weeks: list[datetime]) -> list[WeekOverWeek]:
    """Each service's count in the last week of ``weeks`` against the week before."""
    if not weeks:
        return []
    last = weeks[-1]
    before = weeks[-2] if len(weeks) > 1 else None
    counts = {(w.week, w.key): w.count for w in by_service}
    out = []
    for service in sorted({w.key for w in by_service}):
        this_week = counts.get((last, service), 0)
        last_week = counts.get((before, service), 0) if before is not None else 0
        out.append(
            WeekOverWeek(
                service=service,
                this_week=this_week,
                last_week=last_week,
                change=this_week - last_week,
                change_ratio=round((this_week - last_week) / last_week, 4) if last_week else None,
            )
        )
    return sorted(out, key=lambda w: (-w.change, w.service))


async def recurring(
    pool: Pool,
    *,
    days: int = 30,
    min_count: int = 3,
    service: str | None = None,
    include_drills: bool = False,
) -> Recurring:
    """Groups of incidents that recur ``min_count``+ times in the last ``days`` days: the
    list that feeds problem management."""
    params = {
        "days": days,
        "min_count": min_count,
        "service": service,
        "include_drills": include_drills,
    }
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_RECURRING, params)
        groups = [RecurringGroup.model_validate(r) for r in await cur.fetchall()]
    return Recurring(days=days, min_count=min_count, groups=groups)
