"""The web dashboard: server-rendered pages mounted on the API app (:func:`mount_dashboard`).

Pages read through the same objects as the API (``app.state.ctx``: the IncidentClient and the
PostgreSQL pool) and act through ``IncidentClient.act``, so the workflow's validators decide
what is allowed here exactly as for the API and the CLI. Sign-in exchanges an API token for a
signed session cookie; every form carries the session's CSRF token; jinja2 escapes every
string; a strict Content-Security-Policy forbids inline script and style.

One module per page (``sign_in``, ``board``, ``incident``, ``reports``, ``reviews``,
``ack_links``), built on :mod:`starter.dashboard.pages`; this module mounts them.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import UTC
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from schemas import links
from starter import time_text
from starter.dashboard import board, incident, reports, sign_in
from starter.dashboard.ack_links import ack_router
from starter.dashboard.pages import Dashboard, guarded
from starter.dashboard.reviews import add_review_routes
from starter.dashboard.session import SessionSigner

log = logging.getLogger("incidentflow.dashboard")

STATIC_DIR = Path(__file__).parent / "static"
#: the largest form a page posts (a long note) plus headroom
MAX_FORM_BYTES = 256 * 1024


class DashboardSettings(BaseSettings):
    """From the environment. Set ``INCIDENTFLOW_SESSION_SECRET`` (the same on every API
    replica) so sessions survive restarts and work behind a load balancer."""

    model_config = SettingsConfigDict(env_prefix="INCIDENTFLOW_", extra="ignore")

    session_secret: str | None = None
    session_max_age: int = 12 * 3600
    dashboard_refresh_seconds: float = 5.0


def _static_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.glob("*")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("starter.dashboard", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["stamp"] = time_text.stamp
    env.filters["short"] = time_text.short
    env.filters["duration"] = time_text.maybe
    env.filters["countdown"] = time_text.countdown
    env.filters["age"] = time_text.age
    env.filters["iso"] = lambda dt: dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
    env.filters["label"] = lambda value: str(value).replace("_", " ")
    # paths of the pages (schemas.links): templates write url(incident_path(number))
    env.globals.update(
        board_path=links.board_path, incident_path=links.incident_path, ack_path=links.ack_path
    )
    return env


def mount_dashboard(
    app: FastAPI,
    *,
    prefix: str = links.DASHBOARD_PREFIX,
    secret: str | bytes | None = None,
    refresh_seconds: float | None = None,
) -> None:
    """Add the dashboard's pages, under ``prefix``, to an app from ``create_app``."""
    settings = DashboardSettings()
    existing: Dashboard | None = getattr(app.state, "dashboard", None)
    key = secret if secret is not None else settings.session_secret
    if existing is not None:
        # mounted already (create_app does it): only retune it, never mount twice
        if key is not None:
            existing.signer = SessionSigner(
                key.encode() if isinstance(key, str) else key, max_age=settings.session_max_age
            )
        if refresh_seconds is not None:
            existing.refresh_seconds = refresh_seconds
        return
    if key is None:
        log.warning(
            "INCIDENTFLOW_SESSION_SECRET is not set: dashboard sessions end when this process "
            "stops and are not shared between API replicas"
        )
        key = secrets.token_bytes(32)
    dash = Dashboard(
        prefix=prefix.rstrip("/"),
        refresh_seconds=refresh_seconds or settings.dashboard_refresh_seconds,
        signer=SessionSigner(
            key.encode() if isinstance(key, str) else key, max_age=settings.session_max_age
        ),
        env=_environment(),
        static_version=_static_version(),
    )
    app.state.dashboard = dash
    pages = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    pages.state.ctx_of = lambda: app.state.ctx
    pages.state.dashboard = dash
    for page in (sign_in.router, board.router, incident.router, reports.router):
        pages.include_router(page, prefix=dash.prefix)
    review_pages = APIRouter()
    add_review_routes(review_pages, dash, guarded)
    pages.include_router(review_pages, prefix=dash.prefix)
    pages.include_router(ack_router(dash), prefix=dash.prefix)
    pages.mount(dash.url("/static"), StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    app.add_middleware(DashboardDispatch, prefix=dash.prefix, pages=pages)
    if not any(getattr(route, "path", None) == "/" for route in app.routes):

        @app.get("/", include_in_schema=False)
        async def _root() -> RedirectResponse:
            return RedirectResponse(dash.url("/"), status_code=307)


class DashboardDispatch:
    """Sends the dashboard's paths to its own app, in front of the API's middleware.

    The API accepts JSON bodies only (its body-limit middleware answers 415 to anything
    else), while browsers post forms; so dashboard requests bypass that layer and get a
    body limit of their own here.
    """

    def __init__(
        self, app: ASGIApp, *, prefix: str, pages: ASGIApp, max_body_bytes: int = MAX_FORM_BYTES
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.pages = pages
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == self.prefix or path.startswith(self.prefix + "/")):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared and declared.strip().isdigit() and int(declared) > self.max_body_bytes:
            await PlainTextResponse("form too large", status_code=413)(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = scope["method"] in ("POST", "PUT", "PATCH")
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await PlainTextResponse("form too large", status_code=413)(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.pages(scope, replay, send)
