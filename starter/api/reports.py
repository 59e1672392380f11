"""Reports over the ticket store: ``GET /api/v1/reports/summary``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from starter import tickets_read
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
