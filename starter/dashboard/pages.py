"""What every dashboard page builds on: its configuration (:class:`Dashboard`), rendering
with the security headers, the signed-in user, error pages, and :func:`guarded`, which turns
the helpers' exceptions into redirects and friendly error pages.

The pages (:mod:`~starter.dashboard.sign_in`, :mod:`~starter.dashboard.board`,
:mod:`~starter.dashboard.incident`, :mod:`~starter.dashboard.reports`,
:mod:`~starter.dashboard.reviews`, :mod:`~starter.dashboard.ack_links`) import this module;
:mod:`~starter.dashboard.routes` mounts them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import psycopg
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment
from psycopg_pool import PoolTimeout
from pydantic import BaseModel

from schemas.enums import Scope
from schemas.incident import IncidentSnapshot
from starter.api.context import ApiContext
from starter.api.incidents import load_incident
from starter.dashboard.session import SESSION_COOKIE, SessionSigner, SessionUser
from starter.errors import IncidentNotFound, ServiceUnavailable

NUMBER = re.compile(r"^INC-[1-9][0-9]{0,17}$")
DB_DOWN = (psycopg.OperationalError, PoolTimeout)

#: strict: only our own script and stylesheet; no inline code, no framing, no foreign forms
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Dashboard(BaseModel):
    """The dashboard's configuration on ``app.state.dashboard`` (and on its pages' app)."""

    model_config = {"arbitrary_types_allowed": True}

    prefix: str
    refresh_seconds: float
    signer: SessionSigner
    env: Environment
    static_version: str

    def url(self, path: str = "/") -> str:
        return self.prefix + path


class Redirect(Exception):
    def __init__(self, location: str) -> None:
        self.location = location


class Forbidden(Exception):
    def __init__(self, user: SessionUser, scope: Scope) -> None:
        self.user = user
        self.scope = scope


def dashboard_of(request: Request) -> Dashboard:
    """The dashboard a page belongs to (its pages' app holds it, see ``mount_dashboard``)."""
    dash: Dashboard = request.app.state.dashboard
    return dash


def ctx_of(request: Request) -> ApiContext:
    """The API's context (the dashboard's pages run in their own app, see DashboardDispatch)."""
    ctx: ApiContext = request.app.state.ctx_of()
    return ctx


def render(
    dash: Dashboard,
    request: Request,
    template: str,
    user: SessionUser | None,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    now = datetime.now(UTC)
    html = dash.env.get_template(template).render(
        request=request,
        user=user,
        now=now,
        now_ms=int(now.timestamp() * 1000),
        url=dash.url,
        static=lambda name: dash.url(f"/static/{name}?v={dash.static_version}"),
        refresh_seconds=dash.refresh_seconds,
        **values,
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def safe_next(dash: Dashboard, target: str | None) -> str:
    """Only a path of this dashboard: no open redirect through ``?next=``."""
    if target and target.startswith(dash.prefix + "/") and not target.startswith("//"):
        if "\\" not in target and "\n" not in target and "\r" not in target:
            return target
    return dash.url("/")


def user_of(dash: Dashboard, request: Request) -> SessionUser | None:
    return dash.signer.load(request.cookies.get(SESSION_COOKIE), ctx_of(request).policy)


def page_user(dash: Dashboard, request: Request, scope: Scope = Scope.READ) -> SessionUser:
    """The signed-in user of a page; redirects to sign-in when there is none."""
    user = user_of(dash, request)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise Redirect(dash.url("/login") + "?next=" + quote(target, safe="/"))
    if not user.allows(scope):
        raise Forbidden(user, scope)
    return user


def error_page(
    dash: Dashboard, request: Request, user: SessionUser | None, status: int, message: str
) -> HTMLResponse:
    return render(dash, request, "error.html", user, status=status, message=message)


async def load_snapshot(ctx: ApiContext, number: str) -> IncidentSnapshot:
    snapshot, _source = await load_incident(ctx, number)
    return snapshot


def set_cookie(
    dash: Dashboard, request: Request, response: Response, name: str, value: str, *, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=dash.prefix or "/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


Handler = Callable[..., Awaitable[Response]]


def guarded(handler: Handler) -> Handler:
    """Turn the page helpers' exceptions into redirects and friendly error pages."""

    @functools.wraps(handler)
    async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
        dash = dashboard_of(request)
        try:
            return await handler(request, *args, **kwargs)
        except Redirect as redirect:
            if request.headers.get("x-requested-with") == "fetch":
                return Response(status_code=401, headers=SECURITY_HEADERS)
            return RedirectResponse(redirect.location, status_code=303)
        except Forbidden as err:
            return error_page(
                dash,
                request,
                err.user,
                403,
                f"Your token ({err.user.token}) lacks the {err.scope.value} scope.",
            )
        except IncidentNotFound as err:
            return error_page(dash, request, user_of(dash, request), 404, str(err))
        except (ServiceUnavailable, TimeoutError, *DB_DOWN):
            return error_page(
                dash,
                request,
                user_of(dash, request),
                503,
                "Temporal or PostgreSQL is unreachable right now; this page retries "
                "when you reload it.",
            )

    return wrapper
