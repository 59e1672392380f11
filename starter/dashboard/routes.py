"""The web dashboard: server-rendered pages mounted on the API app.

Pages read through the same objects as the API (``app.state.ctx``: the IncidentClient and the
PostgreSQL pool) and act through ``IncidentClient.act``, so the workflow's validators decide
what is allowed here exactly as for the API and the CLI. Sign-in exchanges an API token for a
signed session cookie; every form carries the session's CSRF token; jinja2 escapes every
string; a strict Content-Security-Policy forbids inline script and style.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from schemas import links
from schemas.enums import Action, Clock, EventKind, Scope, Severity, Status
from schemas.incident import IncidentSnapshot
from schemas.lifecycle import OPEN_STATUSES
from schemas.tokens import find_token
from starter import tickets_read, time_text
from starter.api.context import ApiContext
from starter.dashboard import charts, queries
from starter.dashboard.forms import LABELS, forms_for, parse_action
from starter.dashboard.session import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    SessionSigner,
    SessionUser,
    check_csrf,
)
from starter.errors import (
    ActionRejected,
    IncidentNotFound,
    InvalidAction,
    ServiceUnavailable,
)

log = logging.getLogger("incidentflow.dashboard")

STATIC_DIR = Path(__file__).parent / "static"
NUMBER = re.compile(r"^INC-[1-9][0-9]{0,17}$")
DB_DOWN = (psycopg.OperationalError, PoolTimeout)
#: the largest form a page posts (a long note) plus headroom
MAX_FORM_BYTES = 256 * 1024

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


class DashboardSettings(BaseSettings):
    """From the environment. Set ``INCIDENTFLOW_SESSION_SECRET`` (the same on every API
    replica) so sessions survive restarts and work behind a load balancer."""

    model_config = SettingsConfigDict(env_prefix="INCIDENTFLOW_", extra="ignore")

    session_secret: str | None = None
    session_max_age: int = 12 * 3600
    dashboard_refresh_seconds: float = 5.0


class Dashboard(BaseModel):
    """The dashboard's configuration on ``app.state.dashboard``."""

    model_config = {"arbitrary_types_allowed": True}

    prefix: str
    refresh_seconds: float
    signer: SessionSigner
    env: Environment
    static_version: str

    def url(self, path: str = "/") -> str:
        return self.prefix + path


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
    pages.include_router(_router(dash), prefix=dash.prefix)
    from starter.dashboard.ack_links import ack_router  # it builds on this module's helpers

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


# ---------------------------------------------------------------------------- helpers
class _Redirect(Exception):
    def __init__(self, location: str) -> None:
        self.location = location


def _ctx(request: Request) -> ApiContext:
    """The API's context (the dashboard's pages run in their own app, see DashboardDispatch)."""
    ctx: ApiContext = request.app.state.ctx_of()
    return ctx


def _render(
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


def _safe_next(dash: Dashboard, target: str | None) -> str:
    """Only a path of this dashboard: no open redirect through ``?next=``."""
    if target and target.startswith(dash.prefix + "/") and not target.startswith("//"):
        if "\\" not in target and "\n" not in target and "\r" not in target:
            return target
    return dash.url("/")


def _user(dash: Dashboard, request: Request) -> SessionUser | None:
    return dash.signer.load(request.cookies.get(SESSION_COOKIE), _ctx(request).policy)


def _page_user(dash: Dashboard, request: Request, scope: Scope = Scope.READ) -> SessionUser:
    """The signed-in user of a page; redirects to sign-in when there is none."""
    user = _user(dash, request)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise _Redirect(dash.url("/login") + "?next=" + _quote(target))
    if not user.allows(scope):
        raise _Forbidden(user, scope)
    return user


class _Forbidden(Exception):
    def __init__(self, user: SessionUser, scope: Scope) -> None:
        self.user = user
        self.scope = scope


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="/")


def _error_page(
    dash: Dashboard, request: Request, user: SessionUser | None, status: int, message: str
) -> HTMLResponse:
    return _render(dash, request, "error.html", user, status=status, message=message)


def _board_filters(request: Request) -> queries.BoardFilters:
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


def _filter_query(filters: queries.BoardFilters) -> str:
    from urllib.parse import urlencode

    values = {
        "status": filters.status,
        "severity": filters.severity.value if filters.severity else "",
        "service": filters.service or "",
        "q": filters.q or "",
    }
    return urlencode({k: v for k, v in values.items() if v})


async def _load(ctx: ApiContext, number: str) -> IncidentSnapshot:
    from starter.api.incidents import load_incident

    snapshot, _source = await load_incident(ctx, number)
    return snapshot


def _clocks(snapshot: IncidentSnapshot) -> list[dict[str, Any]]:
    """Each SLA clock of the incident: running (with deadline), met, breached or idle."""
    breached = {b.clock: b for b in snapshot.breaches}
    met_at = {
        Clock.ACK: snapshot.acknowledged_at,
        Clock.MITIGATE: snapshot.mitigated_at,
        Clock.RESOLVE: snapshot.resolved_at,
        Clock.UPDATE: snapshot.last_status_update_at,
    }
    rows = []
    for clock in (Clock.ACK, Clock.MITIGATE, Clock.RESOLVE, Clock.UPDATE):
        deadline = snapshot.deadlines.get(clock)
        rows.append(
            {
                "clock": clock.value,
                "deadline": deadline,
                "breach": breached.get(clock),
                "met_at": met_at[clock],
            }
        )
    return rows


def _incident_values(
    request: Request, snapshot: IncidentSnapshot, user: SessionUser, review: Any
) -> dict[str, Any]:
    ctx = _ctx(request)
    notes = [e for e in snapshot.timeline if e.kind == EventKind.NOTE_ADDED]
    updates = [e for e in snapshot.timeline if e.kind == EventKind.STATUS_UPDATE_POSTED]
    return {
        "incident": snapshot,
        "is_open": snapshot.status in OPEN_STATUSES,
        "clocks": _clocks(snapshot),
        "forms": forms_for(snapshot, ctx.policy) if user.allows(Scope.RESPOND) else [],
        "can_respond": user.allows(Scope.RESPOND),
        "notes": list(reversed(notes)),
        "updates": list(reversed(updates)),
        "timeline": list(reversed(snapshot.timeline)),
        "review": review,
    }


# ---------------------------------------------------------------------------- reports
def _week_label(week: datetime) -> str:
    return week.strftime("%d %b")


async def _report_values(ctx: ApiContext, weeks: int, service: str | None) -> dict[str, Any]:
    pool = ctx.db()
    since = datetime.now(UTC) - timedelta(weeks=weeks)
    weekly = await queries.weekly_times(pool, since=since, service=service)
    summary = await tickets_read.summary(pool, since=since, service=service)
    week_keys = sorted({w.week for w in weekly})
    labels = [_week_label(w) for w in week_keys]
    by_key = {(w.week, w.severity): w for w in weekly}
    severities = list(Severity)

    def weekly_series(attr: str) -> list[charts.Series]:
        out = []
        for sev in severities:
            values = [
                getattr(by_key[(w, sev)], attr) if (w, sev) in by_key else None for w in week_keys
            ]
            if any(v is not None for v in values):
                out.append(charts.Series(sev.value, charts.SEVERITY_COLOURS[sev], values))
        return out

    clocks = [c for c in (Clock.ACK, Clock.MITIGATE, Clock.RESOLVE)]
    sla = {(s.clock, s.severity): s for s in summary.sla}
    sla_series = []
    for sev in severities:
        values = [
            (sla[(c, sev)].compliance or 0) * 100
            if (c, sev) in sla and sla[(c, sev)].compliance is not None
            else None
            for c in clocks
        ]
        if any(v is not None for v in values):
            sla_series.append(charts.Series(sev.value, charts.SEVERITY_COLOURS[sev], values))
    overall = []
    for c in clocks:
        met = sum(s.met for s in summary.sla if s.clock == c)
        breached = sum(s.breached for s in summary.sla if s.clock == c)
        overall.append(
            {
                "clock": c.value,
                "met": met,
                "breached": breached,
                "compliance": (met / (met + breached)) if met + breached else None,
            }
        )
    categories = sorted(summary.by_category.items(), key=lambda kv: (-kv[1], kv[0]))
    services = sorted(summary.by_service.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "weeks": weeks,
        "service": service or "",
        "summary": summary,
        "weekly": weekly,
        "sla_overall": overall,
        "categories": categories,
        "services_counts": services,
        "chart_mtta": charts.grouped_bars(
            "MTTA per severity per week", labels, weekly_series("mtta_seconds"), fmt=_axis_time
        ),
        "chart_mttr": charts.grouped_bars(
            "MTTR per severity per week", labels, weekly_series("mttr_seconds"), fmt=_axis_time
        ),
        "chart_sla": charts.grouped_bars(
            "SLA compliance per clock (%)",
            [c.value for c in clocks],
            sla_series,
            fmt=lambda v: f"{v:.0f}%",
            maximum=100,
        ),
        "chart_categories": charts.horizontal_bars(
            "Incidents by category", [(k.replace("_", " "), float(v)) for k, v in categories]
        ),
        "chart_services": charts.horizontal_bars(
            "Incidents by service", [(k, float(v)) for k, v in services], colour="#00796b"
        ),
    }


def _axis_time(seconds: float) -> str:
    if seconds == 0:
        return "0"
    return f"{seconds:.3g}s" if seconds < 60 else time_text.short(seconds)


# ---------------------------------------------------------------------------- routes
def _router(dash: Dashboard) -> APIRouter:
    router = APIRouter()

    def guarded(handler: Any) -> Any:
        """Turn the page helpers' exceptions into redirects and friendly error pages."""
        import functools

        @functools.wraps(handler)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
            try:
                response: Response = await handler(request, *args, **kwargs)
                return response
            except _Redirect as redirect:
                if request.headers.get("x-requested-with") == "fetch":
                    return Response(status_code=401, headers=SECURITY_HEADERS)
                return RedirectResponse(redirect.location, status_code=303)
            except _Forbidden as err:
                return _error_page(
                    dash,
                    request,
                    err.user,
                    403,
                    f"Your token ({err.user.token}) lacks the {err.scope.value} scope.",
                )
            except IncidentNotFound as err:
                return _error_page(dash, request, _user(dash, request), 404, str(err))
            except (ServiceUnavailable, TimeoutError, *DB_DOWN):
                return _error_page(
                    dash,
                    request,
                    _user(dash, request),
                    503,
                    "Temporal or PostgreSQL is unreachable right now; this page retries "
                    "when you reload it.",
                )

        return wrapper

    # -- sign-in -------------------------------------------------------------------------
    @router.get("/login")
    async def login_form(request: Request, next: str | None = None) -> Response:
        nonce = secrets.token_urlsafe(16)
        response = _render(
            dash,
            request,
            "login.html",
            None,
            csrf=dash.signer.login_csrf(nonce),
            next=_safe_next(dash, next),
            error=None,
        )
        _set_cookie(dash, request, response, LOGIN_CSRF_COOKIE, nonce, max_age=3600)
        return response

    @router.post("/login")
    async def login(request: Request) -> Response:
        ctx = _ctx(request)
        form = await request.form()
        next_url = _safe_next(dash, str(form.get("next") or ""))
        nonce = request.cookies.get(LOGIN_CSRF_COOKIE)

        def again(status: int, error: str) -> Response:
            fresh = secrets.token_urlsafe(16)
            response = _render(
                dash,
                request,
                "login.html",
                None,
                status=status,
                csrf=dash.signer.login_csrf(fresh),
                next=next_url,
                error=error,
            )
            _set_cookie(dash, request, response, LOGIN_CSRF_COOKIE, fresh, max_age=3600)
            return response

        if not dash.signer.check_login_csrf(nonce, str(form.get("csrf") or "")):
            return again(403, "The sign-in form expired; please try again.")
        client = request.client.host if request.client else "unknown"
        retry = ctx.limiter.take(f"dashboard-login:{client}")
        if retry is not None:
            return again(429, f"Too many sign-in attempts; wait {retry} s.")
        token = find_token(ctx.policy, str(form.get("token") or "").strip())
        if token is None:
            return again(401, "That token is not valid. Paste an API token from the policy.")
        response = RedirectResponse(next_url, status_code=303)
        _set_cookie(
            dash,
            request,
            response,
            SESSION_COOKIE,
            dash.signer.issue(token),
            max_age=int(dash.signer.max_age),
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE, path=dash.prefix or "/")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        form = await request.form()
        user = _user(dash, request)
        response = RedirectResponse(dash.url("/login"), status_code=303)
        if user is not None and check_csrf(user, str(form.get("csrf") or "")):
            response.delete_cookie(SESSION_COOKIE, path=dash.prefix or "/")
        return response

    # -- incidents board -----------------------------------------------------------------
    @router.get("/")
    @guarded
    async def board(request: Request) -> Response:
        user = _page_user(dash, request)
        ctx = _ctx(request)
        filters = _board_filters(request)
        rows = await queries.board(ctx.db(), filters)
        known = sorted(
            {s.name for s in ctx.policy.services} | set(await queries.services(ctx.db()))
        )
        return _render(
            dash,
            request,
            "incidents.html",
            user,
            rows=rows,
            filters=filters,
            filter_query=_filter_query(filters),
            services=known,
            statuses=[s.value for s in Status],
            severities=[s.value for s in Severity],
        )

    @router.get("/_board")
    @guarded
    async def board_rows(request: Request) -> Response:
        user = _page_user(dash, request)
        rows = await queries.board(_ctx(request).db(), _board_filters(request))
        return _render(dash, request, "_board_rows.html", user, rows=rows)

    # -- one incident --------------------------------------------------------------------
    async def _incident_response(
        request: Request,
        number: str,
        template: str,
        user: SessionUser,
        *,
        status: int = 200,
        error: str | None = None,
        done: str | None = None,
    ) -> Response:
        if not NUMBER.match(number):
            raise IncidentNotFound(f"no incident {number}")
        ctx = _ctx(request)
        snapshot = await _load(ctx, number)
        from starter.dashboard.reviews import review_view

        review = await review_view(ctx, number)
        values = _incident_values(request, snapshot, user, review)
        return _render(
            dash, request, template, user, status=status, error=error, done=done, **values
        )

    @router.get("/incidents/{number}")
    @guarded
    async def incident(request: Request, number: str) -> Response:
        user = _page_user(dash, request)
        done = request.query_params.get("done")
        done_label = LABELS.get(Action(done)) if done in {a.value for a in Action} else None
        return await _incident_response(request, number, "incident.html", user, done=done_label)

    @router.get("/incidents/{number}/_body")
    @guarded
    async def incident_body(request: Request, number: str) -> Response:
        user = _page_user(dash, request)
        return await _incident_response(request, number, "_incident_body.html", user)

    @router.post("/incidents/{number}/act")
    @guarded
    async def act(request: Request, number: str) -> Response:
        user = _page_user(dash, request, Scope.RESPOND)
        form = await request.form()
        if not check_csrf(user, str(form.get("csrf") or "")):
            return _error_page(
                dash, request, user, 403, "The form expired (CSRF check failed); reload the page."
            )
        if not NUMBER.match(number):
            raise IncidentNotFound(f"no incident {number}")
        try:
            action = Action(str(form.get("action") or ""))
        except ValueError:
            return _error_page(dash, request, user, 422, "Unknown action.")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        ctx = _ctx(request)
        try:
            data = parse_action(action, fields, user.user)
            await ctx.temporal_call(ctx.client().act(number, action, data))
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
            )
            return await _incident_response(
                request, number, "incident.html", user, status=422, error=problems
            )
        except ActionRejected as err:
            return await _incident_response(
                request, number, "incident.html", user, status=409, error=str(err)
            )
        except InvalidAction as err:
            return await _incident_response(
                request, number, "incident.html", user, status=422, error=str(err)
            )
        return RedirectResponse(
            dash.url(links.incident_path(number)) + f"?done={action.value}", status_code=303
        )

    # -- reports -------------------------------------------------------------------------
    @router.get("/reports")
    @guarded
    async def reports(request: Request) -> Response:
        user = _page_user(dash, request)
        try:
            weeks = min(104, max(1, int(request.query_params.get("weeks") or 12)))
        except ValueError:
            weeks = 12
        service = request.query_params.get("service") or None
        ctx = _ctx(request)
        values = await _report_values(ctx, weeks, service)
        known = sorted({s.name for s in ctx.policy.services})
        return _render(dash, request, "reports.html", user, services=known, **values)

    from starter.dashboard.reviews import add_review_routes

    add_review_routes(router, dash, guarded)
    return router


def _set_cookie(
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
