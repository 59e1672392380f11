"""The operator surfaces under test: the real app (API + dashboard) served by uvicorn on a
loopback port, with a real worker, so the CLI and a browser reach it over real HTTP.

uvicorn runs as a task on the test session's event loop (where the Temporal client and the
worker live); callers that block (typer's CliRunner, the browser) run in a thread, or await.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from temporalio.client import Client

from schemas.policy import Policy
from starter.api.app import create_app
from starter.api.server import QuietServer
from starter.dashboard.routes import mount_dashboard
from tests.support_api import ApiNames, api_policy
from tests.support_incidents import Stack, running_stack
from worker.devinfra import bound_socket

SESSION_SECRET = "test-session-secret-0123456789abcdef"


def socket_url(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


@asynccontextmanager
async def serve_http(app: FastAPI, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """Serve ``app`` on ``sock`` (default: a free loopback port); yields its base URL."""
    sock = sock or bound_socket()
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = QuietServer(config)  # the test process keeps its own signal handlers
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()  # raise the startup failure
                await asyncio.sleep(0.02)
        yield socket_url(sock)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
        sock.close()


@dataclass
class Live:
    url: str
    app: FastAPI
    stack: Stack
    names: ApiNames
    http: httpx.AsyncClient

    @property
    def service(self) -> str:
        return self.names.service

    def token(self, name: str) -> str:
        return self.names.tokens[name]

    def auth(self, name: str) -> dict[str, str]:
        return self.names.auth(name)

    async def trigger(self, title: str, **fields: Any) -> dict[str, Any]:
        """Open an incident through the API; waits for its ticket row (the board's source)."""
        body = {"title": title, "service": self.service, **fields}
        response = await self.http.post("/api/v1/incidents", json=body, headers=self.auth("admin"))
        assert response.status_code in (200, 201), response.text
        ref: dict[str, Any] = response.json()
        await self.ticket(ref["number"])
        return ref

    async def ticket(self, number: str, status: str | None = None) -> dict[str, Any]:
        from tests.conftest import wait_for

        async def probe() -> dict[str, Any] | None:
            rows = await self.stack.rows(
                "SELECT status, last_seq FROM incidents WHERE number = %s", number
            )
            if rows and (status is None or rows[0]["status"] == status):
                return rows[0]
            return None

        return await wait_for(probe, timeout=20, message=f"ticket row of {number}")


@asynccontextmanager
async def live_app(
    temporal_client: Client,
    database_url: str,
    task_queue: str,
    *,
    refresh_seconds: float = 1.0,
    settings_overrides: dict[str, Any] | None = None,
    policy_edit: Callable[[Policy], Policy] | None = None,
    **clock_overrides: Any,
) -> AsyncIterator[Live]:
    """Worker + app (API and dashboard) on a real port, with ``api_policy``'s tokens.

    ``settings_overrides`` go to the worker and the app alike; ``policy_edit`` may change the
    policy (e.g. give users contacts) before either starts.
    """
    clocks: dict[str, Any] = {
        "ack_within": 900,
        "level_delay": 900,
        "mitigate_within": 1800,
        "resolve_within": 3600,
    }
    clocks.update(clock_overrides)
    policy, names = api_policy(**clocks)
    if policy_edit is not None:
        policy = policy_edit(policy)
    sock = bound_socket()
    try:
        # links in notifications point at this very app
        overrides = {"incidentflow_base_url": socket_url(sock), **(settings_overrides or {})}
        async with running_stack(
            temporal_client, database_url, task_queue, policy, settings_overrides=overrides
        ) as stack:
            settings = stack.settings
            app = create_app(settings, policy, temporal=temporal_client)
            mount_dashboard(app, secret=SESSION_SECRET, refresh_seconds=refresh_seconds)
            async with (
                serve_http(app, sock) as url,
                httpx.AsyncClient(base_url=url, timeout=30) as http,
            ):
                yield Live(url=url, app=app, stack=stack, names=names, http=http)
    finally:
        sock.close()
