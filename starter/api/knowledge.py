"""What past incidents teach, over the API: ``GET /api/v1/incidents/{number}/similar`` and
``GET /api/v1/search`` (``starter.knowledge_read``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from schemas.similarity import DEFAULT_LIMIT, MAX_LIMIT
from starter import knowledge_read
from starter.api.auth import Read
from starter.api.context import ApiContext, get_context
from starter.api.errors import ERROR_RESPONSES
from starter.api.params import NOT_BLANK_PATTERN, NumberPath
from starter.errors import IncidentNotFound

Ctx = Annotated[ApiContext, Depends(get_context)]

router = APIRouter(prefix="/api/v1", tags=["knowledge"], responses=ERROR_RESPONSES)


@router.get(
    "/incidents/{number}/similar",
    response_model=knowledge_read.SimilarIncidents,
    summary="Similar past incidents",
)
async def similar(
    number: NumberPath,
    _: Read,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> knowledge_read.SimilarIncidents:
    """Incidents created before ``number`` that look like it, best first, each with why it
    ranked ("same service, 3 shared terms"), its resolution and time to resolve: full-text
    terms of its title and description, title similarity, the same service and dedup-key
    family."""
    found = await knowledge_read.similar(ctx.db(), number, limit=limit)
    if found is None:
        raise IncidentNotFound(f"no incident {number}")
    return found


@router.get("/search", response_model=knowledge_read.SearchPage, summary="Search incidents")
async def search(
    _: Read,
    ctx: Ctx,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            pattern=rf"^[^\x00]*{NOT_BLANK_PATTERN}[^\x00]*$",
            description='web-search syntax: words, "a phrase", -excluded, or',
        ),
    ],
    limit: Annotated[
        int, Query(ge=1, le=knowledge_read.MAX_SEARCH_LIMIT)
    ] = knowledge_read.DEFAULT_SEARCH_LIMIT,
    include_drills: Annotated[bool, Query(description="find drills too")] = False,
) -> knowledge_read.SearchPage:
    """Incidents whose title, description, notes, resolution or postmortem match ``q``
    (full text, English stemming), or whose title contains it as typed; best first. Drills
    only with ``include_drills=true``."""
    return await knowledge_read.search(ctx.db(), q, limit=limit, include_drills=include_drills)
