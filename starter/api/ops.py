"""Operational routes: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from psycopg_pool import PoolTimeout
from pydantic import BaseModel

from starter import tickets_read
from starter.api.auth import Read
from starter.api.context import ApiContext, get_context
from starter.api.errors import ERROR_RESPONSES
from starter.api.metrics import CONTENT_TYPE

router = APIRouter(tags=["ops"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    #: ``ok`` or ``unavailable: <error type>`` per dependency
    checks: dict[str, str]
    #: hash of the policy in force (``incidentflow_policy_info``); compare across replicas
    policy: str


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (no dependency is checked)."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a dependency is unreachable"}},
)
async def readyz(ctx: Annotated[ApiContext, Depends(get_context)]) -> JSONResponse:
    """Temporal and PostgreSQL are both reachable."""
    checks: dict[str, str] = {}
    try:
        if ctx.temporal is None:
            raise RuntimeError("not connected")
        await ctx.temporal_call(ctx.temporal.service_client.check_health())
        checks["temporal"] = "ok"
    except Exception as exc:  # readiness reports any failure, whatever its type
        checks["temporal"] = f"unavailable: {type(exc).__name__}"
    try:
        async with ctx.db().connection(timeout=ctx.options.db_timeout) as conn:
            await conn.execute("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = f"unavailable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    body = Readiness(
        status="ready" if ready else "not ready", checks=checks, policy=ctx.policies.hash
    )
    return JSONResponse(
        body.model_dump(),
        status_code=200 if ready else 503,
        headers={} if ready else {"Retry-After": "5"},
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}},
        **{k: v for k, v in ERROR_RESPONSES.items() if k in (401, 403, 429)},
    },
)
async def metrics(_: Read, ctx: Annotated[ApiContext, Depends(get_context)]) -> Response:
    """Prometheus exposition: requests, latencies, incidents opened, notifications
    (sent/failed/pending, from the outbox at scrape time; omitted while PostgreSQL is down)."""
    counts: dict[str, int] | None = None
    if ctx.pool is not None:
        try:
            counts = await tickets_read.notification_counts(ctx.pool)
        except (psycopg.OperationalError, PoolTimeout):
            counts = None
    return Response(ctx.metrics.render(counts), media_type=CONTENT_TYPE)
