"""Reports over the ticket store: ``GET /api/v1/reports/summary``, ``…/trends`` and
``…/recurring``."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from starter import tickets_read, trends_read
from starter.api.auth import Read
from starter.api.context import ApiContext, get_context
from starter.api.errors import ERROR_RESPONSES
from starter.api.params import TEXT_PATTERN, Instant

router = APIRouter(prefix="/api/v1/reports", tags=["reports"], responses=ERROR_RESPONSES)


@router.get("/summary", response_model=tickets_read.SummaryReport, summary="Summary report")
async def summary(
    _: Read,
    ctx: Annotated[ApiContext, Depends(get_context)],
    since: Annotated[Instant | None, Query(description="incidents created at or after")] = None,
    until: Annotated[Instant | None, Query(description="incidents created before")] = None,
    service: Annotated[str | None, Query(max_length=200, pattern=TEXT_PATTERN)] = None,
    include_drills: Annotated[bool, Query(description="count drills too")] = False,
) -> tickets_read.SummaryReport:
    """Counts by severity/category/service/status, MTTA, MTTR (overall and per severity) and
    SLA compliance per clock and severity, over incidents created in ``[since, until)``;
    drills are left out unless ``include_drills=true``."""
    return await tickets_read.summary(
        ctx.db(), since=since, until=until, service=service, include_drills=include_drills
    )


@router.get("/trends", response_model=trends_read.Trends, summary="Trends")
async def trends(
    _: Read,
    ctx: Annotated[ApiContext, Depends(get_context)],
    weeks: Annotated[int, Query(ge=1, le=104, description="ISO weeks back, this one included")] = 8,
    service: Annotated[str | None, Query(max_length=200, pattern=TEXT_PATTERN)] = None,
    include_drills: Annotated[bool, Query(description="count drills too")] = False,
) -> trends_read.Trends:
    """Counts, MTTA and MTTR per week by service and by category, each service's last week
    against the week before, and the noisiest services (alerts, then incidents)."""
    start = datetime.now(UTC) - timedelta(weeks=weeks - 1)
    since = datetime.combine(start.date() - timedelta(days=start.weekday()), time(), UTC)
    return await trends_read.trends(
        ctx.db(), since=since, service=service, include_drills=include_drills
    )


@router.get("/recurring", response_model=trends_read.Recurring, summary="Recurring problems")
async def recurring(
    _: Read,
    ctx: Annotated[ApiContext, Depends(get_context)],
    days: Annotated[int, Query(ge=1, le=365, description="the window, in days back")] = 30,
    min_count: Annotated[int, Query(ge=2, le=1000, description="incidents to recur")] = 3,
    service: Annotated[str | None, Query(max_length=200, pattern=TEXT_PATTERN)] = None,
    include_drills: Annotated[bool, Query(description="count drills too")] = False,
) -> trends_read.Recurring:
    """Groups of incidents of one service that recur ``min_count`` times or more in the
    window: the same dedup-key family, or titles alike once their numbers are masked; with
    counts, first and last seen, and the last time to resolve (problem management)."""
    return await trends_read.recurring(
        ctx.db(), days=days, min_count=min_count, service=service, include_drills=include_drills
    )
