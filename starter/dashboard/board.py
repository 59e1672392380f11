"""The incidents board (``/``) and its rows, refreshed in place (``/_board``)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from schemas.enums import Severity, Status
from starter.dashboard import queries
from starter.dashboard.pages import ctx_of, dashboard_of, guarded, page_user, render

router = APIRouter()


def board_filters(request: Request) -> queries.BoardFilters:
    q = request.query_params
    status = q.get("status") or "open"
    if status not in ("open", "all") and status not in {s.value for s in Status}:
        status = "open"
    severity = q.get("severity") or None
    return queries.BoardFilters(
        status=status,
        severity=Severity(severity) if severity in {s.value for s in Severity} else None,
        service=(q.get("service") or None),
        q=(q.get("q") or "")[:200] or None,
    )


def filter_query(filters: queries.BoardFilters) -> str:
    values = {
        "status": filters.status,
        "severity": filters.severity.value if filters.severity else "",
        "service": filters.service or "",
        "q": filters.q or "",
    }
    return urlencode({k: v for k, v in values.items() if v})


@router.get("/")
@guarded
async def board(request: Request) -> Response:
    dash = dashboard_of(request)
    user = page_user(dash, request)
    ctx = ctx_of(request)
    filters = board_filters(request)
    rows = await queries.board(ctx.db(), filters)
    known = sorted({s.name for s in ctx.policy.services} | set(await queries.services(ctx.db())))
    return render(
        dash,
        request,
        "incidents.html",
        user,
        rows=rows,
        filters=filters,
        filter_query=filter_query(filters),
        services=known,
        statuses=[s.value for s in Status],
        severities=[s.value for s in Severity],
    )


@router.get("/_board")
@guarded
async def board_rows(request: Request) -> Response:
    dash = dashboard_of(request)
    user = page_user(dash, request)
    rows = await queries.board(ctx_of(request).db(), board_filters(request))
    return render(dash, request, "_board_rows.html", user, rows=rows)
