"""What every handler needs, held in one object on ``app.state`` (no module globals), so
several apps (tests, a CLI and a dev launcher in one process) never share state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from fastapi import Request
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import BaseModel, Field
from temporalio.client import Client

from schemas.policy import Policy
from schemas.policy_holder import PolicyHolder
from schemas.settings import Settings
from starter.api.limits import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_JSON_DEPTH,
    RateLimiter,
)
from starter.api.metrics import ApiMetrics
from starter.client import IncidentClient
from starter.errors import ServiceUnavailable

T = TypeVar("T")


class ApiOptions(BaseModel):
    """Tunables of one app instance (tests shrink them; production keeps the defaults)."""

    #: requests/min per credential; ``None`` = ``INCIDENTFLOW_RATE_LIMIT`` (0 = off)
    rate_limit: int | None = Field(default=None, ge=0)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1)
    max_json_depth: int = Field(default=DEFAULT_MAX_JSON_DEPTH, ge=2)
    #: seconds to wait for a PostgreSQL connection before answering 503
    db_timeout: float = Field(default=5.0, gt=0)
    #: seconds to wait for Temporal (a query, an update) before answering 503
    temporal_timeout: float = Field(default=15.0, gt=0)


log = logging.getLogger(__name__)
#: seconds an action waits for a connection to locate its incident in the ticket store
LOCATE_WAIT = 0.5


@dataclass
class ApiContext:
    settings: Settings
    #: the served policy; a reload swaps it for every handler at once
    policies: PolicyHolder
    options: ApiOptions
    limiter: RateLimiter
    metrics: ApiMetrics
    temporal: Client | None = None
    incidents: IncidentClient | None = None
    pool: AsyncConnectionPool[psycopg.AsyncConnection] | None = None

    @property
    def policy(self) -> Policy:
        return self.policies.current

    def client(self) -> IncidentClient:
        if self.incidents is None:
            raise ServiceUnavailable("the API is starting: Temporal is not connected yet")
        return self.incidents

    def db(self) -> AsyncConnectionPool[psycopg.AsyncConnection]:
        if self.pool is None:
            raise ServiceUnavailable("PostgreSQL is not configured (DATABASE_URL)")
        return self.pool

    async def ticket_workflow_id(self, number: str) -> str | None:
        """The workflow id the ticket store holds for ``number`` (primary-key read), or
        None when it cannot say: no database, not written yet, or not reachable in
        ``LOCATE_WAIT`` (the caller then asks visibility, so an action never fails here)."""
        if self.pool is None:
            return None
        try:
            async with self.pool.connection(timeout=LOCATE_WAIT) as conn:
                cursor = await conn.execute(
                    "SELECT workflow_id FROM incidents WHERE number = %s", (number,)
                )
                row = await cursor.fetchone()
        except (psycopg.Error, PoolTimeout) as err:
            log.warning("ticket store did not locate %s (%s); asking visibility", number, err)
            return None
        return str(row[0]) if row else None

    async def temporal_call(self, call: Awaitable[T]) -> T:
        """Await a Temporal call with the app's deadline; TimeoutError becomes a 503."""
        async with asyncio.timeout(self.options.temporal_timeout):
            return await call


async def get_context(request: Request) -> ApiContext:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop (and,
    # under a burst, a wait for one of its 40 threads) before every request
    ctx: ApiContext = request.app.state.ctx
    return ctx
