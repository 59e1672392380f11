"""Audit exports (read scope): ``GET /api/v1/exports/incidents.csv``, ``incidents.jsonl`` and
``events.csv``, streamed (``starter.exports_read``); ``X-Export-Rows`` says how many rows
follow, so a client can show progress."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from schemas.enums import Severity
from starter import exports_read
from starter.api.auth import Read
from starter.api.context import ApiContext, get_context
from starter.api.errors import ERROR_RESPONSES
from starter.api.params import TEXT_PATTERN, Instant

Ctx = Annotated[ApiContext, Depends(get_context)]

router = APIRouter(prefix="/api/v1/exports", tags=["exports"], responses=ERROR_RESPONSES)


def export_filters(
    since: Annotated[Instant | None, Query(description="incidents created at or after")] = None,
    until: Annotated[Instant | None, Query(description="incidents created before")] = None,
    service: Annotated[str | None, Query(max_length=200, pattern=TEXT_PATTERN)] = None,
    severity: Annotated[Severity | None, Query()] = None,
    include_drills: Annotated[bool, Query(description="export drills too")] = False,
) -> exports_read.ExportFilters:
    return exports_read.ExportFilters(
        since=since,
        until=until,
        service=service,
        severity=severity,
        include_drills=include_drills,
    )


Filters = Annotated[exports_read.ExportFilters, Depends(export_filters)]


def _encoded(chunks: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async def encode() -> AsyncIterator[bytes]:
        async for chunk in chunks:
            if chunk:
                yield chunk.encode("utf-8")

    return encode()


async def _stream(
    ctx: ApiContext,
    table: exports_read.Table,
    chunks: AsyncIterator[str],
    media_type: str,
    filename: str,
    filters: exports_read.ExportFilters,
) -> StreamingResponse:
    total = await exports_read.count(ctx.db(), table, filters)
    return StreamingResponse(
        _encoded(chunks),
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Export-Rows": str(total),
        },
    )


_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "CSV, the header row first"}
}
_JSONL: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/x-ndjson": {}}, "description": "one incident a line"}
}


@router.get(
    "/incidents.csv", response_class=StreamingResponse, responses=_CSV, summary="Incidents CSV"
)
async def incidents_csv(_: Read, ctx: Ctx, filters: Filters) -> StreamingResponse:
    """Every incident the filters select, oldest first, as CSV (header row first). Text a
    spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@``) is prefixed with ``'``."""
    chunks = exports_read.csv_chunks(ctx.db(), "incidents", filters)
    return await _stream(ctx, "incidents", chunks, "text/csv", "incidents.csv", filters)


@router.get(
    "/incidents.jsonl",
    response_class=StreamingResponse,
    responses=_JSONL,
    summary="Incidents JSON Lines",
)
async def incidents_jsonl(_: Read, ctx: Ctx, filters: Filters) -> StreamingResponse:
    """Every incident the filters select, oldest first, one JSON object a line."""
    chunks = exports_read.jsonl_chunks(ctx.db(), filters)
    return await _stream(
        ctx, "incidents", chunks, "application/x-ndjson", "incidents.jsonl", filters
    )


@router.get(
    "/events.csv", response_class=StreamingResponse, responses=_CSV, summary="Timelines CSV"
)
async def events_csv(_: Read, ctx: Ctx, filters: Filters) -> StreamingResponse:
    """Every timeline event of the incidents the filters select (number, seq, at, actor,
    kind, details as JSON), in incident then sequence order, as CSV."""
    chunks = exports_read.csv_chunks(ctx.db(), "events", filters)
    return await _stream(ctx, "events", chunks, "text/csv", "events.csv", filters)
