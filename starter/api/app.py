"""The FastAPI application factory. Every incident handler goes through ``IncidentClient``;
listings and reports read PostgreSQL through their own small pool (``starter.tickets_read``).

Layers, outermost first: metrics (counts every answer, refusals included) → body limits
(413/415/400 before any parsing) → ``Idempotency-Key`` (a retried native POST gets the first
answer, ``starter.api.idempotency``) → FastAPI (auth, rate limit, scopes, validation, handlers)
→ one error shape (``starter.api.errors``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from schemas.connection import connect_temporal
from schemas.policy import Policy
from schemas.policy_holder import PolicyHolder
from schemas.settings import Settings
from starter.api import (
    action_items,
    admin,
    exports,
    heartbeats,
    idempotency,
    incidents,
    integrations_alertmanager,
    integrations_pagerduty,
    integrations_slack,
    knowledge,
    ops,
    reports,
    reviews,
)
from starter.api.context import ApiContext, ApiOptions
from starter.api.errors import install_error_handlers
from starter.api.limits import BodyLimitMiddleware, RateLimiter
from starter.api.metrics import ApiMetrics, MetricsMiddleware
from starter.api.redaction import install_log_redaction
from starter.client import IncidentClient
from starter.status_page.routes import mount_status_page

log = logging.getLogger("incidentflow.api")

DESCRIPTION = """\
Incident automation on Temporal. Native API under `/api/v1` (bearer tokens from the policy
file; scopes `ingest`, `respond`, `read`, `admin` — admin implies all), a Prometheus
Alertmanager webhook and a PagerDuty Events API v2 compatible endpoint (authenticated by a
service's integration key).
"""


def create_app(
    settings: Settings,
    policy: Policy | PolicyHolder,
    *,
    temporal: Client | None = None,
    options: ApiOptions | None = None,
) -> FastAPI:
    """Build the app; connects to Temporal on startup unless a client is given (tests).

    The PostgreSQL pool opens without waiting, so the API starts (and ``/readyz`` says why it
    is not ready) even while the database is still coming up.
    """
    options = options or ApiOptions()
    install_log_redaction()
    holder = PolicyHolder.of(policy)
    ctx = ApiContext(
        settings=settings,
        policies=holder,
        options=options,
        limiter=RateLimiter(
            settings.incidentflow_rate_limit if options.rate_limit is None else options.rate_limit
        ),
        metrics=ApiMetrics(),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = temporal or await connect_temporal(settings)
        ctx.temporal = client
        ctx.incidents = IncidentClient(
            client, holder, task_queue=settings.temporal_task_queue, locate=ctx.ticket_workflow_id
        )
        if settings.database_url:
            pool: AsyncConnectionPool[psycopg.AsyncConnection] = AsyncConnectionPool(
                settings.database_url,
                min_size=settings.db_pool_min,
                max_size=settings.db_pool_max,
                timeout=options.db_timeout,
                kwargs={"autocommit": True},
                name="incidentflow-api",
                open=False,
            )
            await pool.open(wait=False)
            ctx.pool = pool
        else:
            log.warning("DATABASE_URL is not set: listings and reports answer 503")
        try:
            yield
        finally:
            await slack_inbound.drain()
            if ctx.pool is not None:
                await ctx.pool.close()
                ctx.pool = None
            ctx.incidents = None

    app = FastAPI(
        title="incidentflow",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.state.settings = settings
    app.state.policy = holder.current  # as started (tests read it)
    for module in (ops, incidents, reports, integrations_alertmanager, integrations_pagerduty):
        app.include_router(module.router)
    for module in (reviews, action_items, admin):
        app.include_router(module.router)
    ctx.metrics.registry.register(admin.PolicyInfoCollector(holder))
    reviews.document_policy_users(app, holder.current)
    app.include_router(heartbeats.router)
    app.include_router(knowledge.router)
    app.include_router(exports.router)
    slack_inbound = integrations_slack.install(app)
    install_error_handlers(app)
    # innermost first: the idempotency check sees the body the limits let through
    app.add_middleware(idempotency.IdempotencyMiddleware, pool=lambda: ctx.pool)
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=options.max_body_bytes, max_depth=options.max_json_depth
    )
    app.add_middleware(MetricsMiddleware, metrics=ctx.metrics, router_app=app)
    from starter.dashboard.routes import mount_dashboard  # the dashboard builds on this app

    mount_dashboard(app)
    mount_status_page(app)
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = idempotency.document(build_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
