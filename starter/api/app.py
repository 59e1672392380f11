"""The FastAPI application factory. Every handler goes through ``IncidentClient``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.client import Client

from schemas.policy import Policy
from schemas.settings import Settings
from starter.client import IncidentClient
from starter.connection import connect_temporal


def create_app(settings: Settings, policy: Policy, *, temporal: Client | None = None) -> FastAPI:
    """Build the app; connects to Temporal on startup unless a client is given (tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = temporal or await connect_temporal(settings)
        app.state.temporal = client
        app.state.incidents = IncidentClient(
            client, policy, task_queue=settings.temporal_task_queue
        )
        yield

    app = FastAPI(title="incidentflow", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.policy = policy

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz(request: Request) -> JSONResponse:
        """Temporal and PostgreSQL are both reachable."""
        checks: dict[str, str] = {}
        try:
            await request.app.state.temporal.service_client.check_health()
            checks["temporal"] = "ok"
        except Exception as exc:  # readiness reports any failure, whatever its type
            checks["temporal"] = f"unavailable: {type(exc).__name__}"
        try:
            if not settings.database_url:
                raise RuntimeError("DATABASE_URL not set")
            async with await psycopg.AsyncConnection.connect(
                settings.database_url, connect_timeout=3
            ) as conn:
                await conn.execute("SELECT 1")
            checks["postgres"] = "ok"
        except Exception as exc:
            checks["postgres"] = f"unavailable: {type(exc).__name__}"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
            headers={} if ready else {"Retry-After": "5"},
        )

    return app
