"""The public status page, served by the API process under ``/status``: no sign-in, no
script, no build step.

- ``GET /status`` (HTML), ``GET /status/feed.atom`` (Atom 1.0, feedgen) and
  ``GET /status/summary.json`` (Statuspage's public ``summary.json`` shape,
  ``schemas.status_page.Summary``) read PostgreSQL only (``starter.status_read``), never
  Temporal; every answer has a strong ETag, ``If-None-Match`` gets a 304, and a short
  ``Cache-Control: public`` lets a CDN absorb a flood of views.
- ``POST /status/subscribe`` (a form from the page, or JSON ``{"email": ...}``) answers 202
  the same way for every well-formed address, subscribed or not, and starts
  ``StatusSubscriptionWorkflow``, which sends the confirmation mail (the API sends no mail
  itself). Rate-limited per client and overall.
- ``/status/subscriptions/confirm/<token>`` and ``/status/subscriptions/unsubscribe/<token>``:
  ``GET`` shows one button and changes nothing (mail scanners prefetch links), ``POST`` acts;
  the unsubscribe ``POST`` is also RFC 8058's one-click target.

The routes live on their own small app, put in front of the API's JSON-only body middleware
the way the dashboard is (``DashboardDispatch``), because browsers post forms. They are not
in the API's OpenAPI document: docs/status-page.md describes them, and
docs/status-summary.schema.json is the summary's schema.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from feedgen.feed import FeedGenerator
from jinja2 import Environment, PackageLoader, select_autoescape
from psycopg_pool import PoolTimeout
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError

from schemas import links
from schemas.activity_io import SubscriptionRequest
from schemas.policy import EMAIL_PATTERN
from schemas.status_page import (
    INDICATOR,
    STATUS_WORDS,
    StatusView,
    build_view,
    public_services,
    summary,
)
from schemas.status_tokens import InvalidSubscriptionToken, Purpose, read_subscription
from schemas.workflow_ids import subscription_workflow_id
from starter import status_read, time_text
from starter.api.context import ApiContext
from starter.api.limits import RateLimiter, parse_json
from starter.errors import ServiceUnavailable
from workflows.subscription import StatusSubscriptionWorkflow

STATIC = Path(__file__).parent / "static"
#: subscribe requests per minute from one client address, and from everyone together
SUBSCRIBE_PER_CLIENT = 5
SUBSCRIBE_OVERALL = 60
#: longest address accepted (RFC 5321's path limit)
MAX_EMAIL = 254
#: a CDN or browser may reuse an answer this long (seconds); the ETag revalidates after
MAX_AGE = 15
#: how long one process reuses what it read from PostgreSQL (seconds)
VIEW_TTL = 1.0

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ACCEPTED = (
    "Thanks. If this address can subscribe, a confirmation mail is on its way: "
    "open its link to start getting updates."
)
_DB_DOWN = (psycopg.OperationalError, PoolTimeout)


@dataclass(frozen=True)
class LinkPage:
    """A signed link's page (``/status/subscriptions/<segment>/<token>``)."""

    purpose: Purpose
    title: str
    button: str
    done_title: str
    done: str


#: URL segment → what its link does (``schemas.links`` builds the URLs)
LINKS: dict[str, LinkPage] = {
    "confirm": LinkPage(
        "confirm",
        "Confirm your subscription",
        "Confirm",
        "Subscribed",
        "You will get a mail with each public update. Every mail has a link to unsubscribe.",
    ),
    "unsubscribe": LinkPage(
        "unsubscribe",
        "Unsubscribe",
        "Unsubscribe",
        "Unsubscribed",
        "You will get no more mail from us.",
    ),
}


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("starter.status_page", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["stamp"] = time_text.stamp
    env.filters["iso"] = lambda dt: dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
    env.filters["words"] = lambda status: STATUS_WORDS[status]
    env.filters["label"] = lambda value: str(value).replace("_", " ")
    return env


class StatusPages:
    """The status page's state on its app: the templates and the subscribe limits."""

    def __init__(self, ctx_of: Any) -> None:
        self.ctx_of = ctx_of
        self.env = _environment()
        self.per_client = RateLimiter(SUBSCRIBE_PER_CLIENT)
        self.overall = RateLimiter(SUBSCRIBE_OVERALL)
        #: the last view built and when (monotonic), shared by every request for VIEW_TTL
        self._view: tuple[float, StatusView] | None = None
        self._building = asyncio.Lock()

    @property
    def ctx(self) -> ApiContext:
        ctx: ApiContext = self.ctx_of()
        return ctx

    def base_url(self) -> str:
        return self.ctx.settings.incidentflow_base_url or self.ctx.policy.base_url

    async def view(self) -> StatusView:
        """The page's facts, built at most once per ``VIEW_TTL`` per process: a flood of views
        costs PostgreSQL one read a second and waits on a single build."""
        async with self._building:
            cached = self._view
            if cached is not None and time.monotonic() - cached[0] < VIEW_TTL:
                return cached[1]
            view = await self._build()
            self._view = (time.monotonic(), view)
            return view

    async def _build(self) -> StatusView:
        ctx = self.ctx
        now = datetime.now(UTC)
        services = [s.name for s in public_services(ctx.policy)]
        facts = await status_read.incident_facts(ctx.db(), services, now)
        return build_view(ctx.policy, facts, url=links.status_url(self.base_url()), now=now)

    def html(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = self.env.get_template(template).render(
            page_name=self.ctx.policy.status_page.name,
            home=links.STATUS_PREFIX,
            **context,
        )
        return HTMLResponse(
            body, status_code=status, headers={**HEADERS, "Cache-Control": "no-store"}
        )


def cached(request: Request, body: bytes, media_type: str) -> Response:
    """``body`` with a strong ETag, or 304 when the client holds it already."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {**HEADERS, "ETag": etag, "Cache-Control": f"public, max-age={MAX_AGE}"}
    sent = request.headers.get("if-none-match", "")
    if etag in [tag.strip().removeprefix("W/") for tag in sent.split(",")] or sent == "*":
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def atom(view: StatusView) -> bytes:
    """The public updates as Atom 1.0, newest first (open and past incidents)."""
    feed = FeedGenerator()
    feed.id(view.url)
    feed.title(f"{view.name} status")
    feed.link(href=view.url, rel="alternate")
    feed.link(href=view.url + "/feed.atom", rel="self")
    feed.updated(view.updated_at)
    entries = [(i, u) for i in view.incidents for u in i.updates]
    entries.sort(key=lambda pair: pair[1].at)
    for incident, update in entries[-100:]:
        entry = feed.add_entry()  # feedgen prepends: the newest ends up first
        entry.id(f"{view.url}#{incident.id}-{update.seq}")
        phase = (update.phase or "investigating").capitalize()
        entry.title(f"{incident.name}: {phase}")
        entry.link(href=f"{view.url}#{incident.id}")
        entry.updated(update.at)
        entry.published(update.at)
        entry.content(update.text, type="text")
    if not entries:
        feed.updated(view.generated_at)
    body: bytes = feed.atom_str(pretty=True)
    return body


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _too_many(retry_after: int, as_json: bool, pages: StatusPages) -> Response:
    message = "Too many subscription requests; try again in a minute."
    headers = {"Retry-After": str(retry_after)}
    if as_json:
        return JSONResponse({"detail": message}, status_code=429, headers={**HEADERS, **headers})
    response = pages.html("message.html", 429, title="Slow down", message=message)
    response.headers.update(headers)
    return response


async def _email_of(request: Request) -> tuple[str | None, bool]:
    """The posted address (``None`` when missing) and whether the request was JSON."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            body = parse_json(await request.body())
        except ValueError:
            return None, True
        value = body.get("email") if isinstance(body, dict) else None
        return (value if isinstance(value, str) else None), True
    form = await request.form()
    value = form.get("email")
    return (value if isinstance(value, str) else None), False


def valid_email(value: str | None) -> str | None:
    """A plain ``user@domain`` address, or ``None``: nothing that could carry a second
    recipient, a header or a display name."""
    if value is None:
        return None
    text = value.strip()
    if len(text) > MAX_EMAIL or not re.fullmatch(EMAIL_PATTERN, text):
        return None
    return text


def create_status_app(ctx_of: Any) -> FastAPI:
    """The status page's app; ``ctx_of()`` gives the API's ``ApiContext``."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    pages = StatusPages(ctx_of)
    app.state.status_pages = pages
    prefix = links.STATUS_PREFIX

    async def view_or_503() -> StatusView | Response:
        try:
            return await pages.view()
        except (*_DB_DOWN, ServiceUnavailable):
            return pages.html(
                "message.html",
                503,
                title="Unavailable",
                message="The status page is unavailable right now; try again shortly.",
            )

    @app.get(prefix)
    async def status_page(request: Request) -> Response:
        view = await view_or_503()
        if isinstance(view, Response):
            return view
        indicator, words = INDICATOR[view.status]
        body = pages.env.get_template("status.html").render(
            page_name=view.name,
            home=prefix,
            view=view,
            indicator=indicator,
            words=words,
            subscribed=request.query_params.get("subscribed") == "1",
        )
        return cached(request, body.encode(), "text/html; charset=utf-8")

    @app.get(prefix + "/feed.atom")
    async def feed(request: Request) -> Response:
        view = await view_or_503()
        if isinstance(view, Response):
            return view
        return cached(request, atom(view), "application/atom+xml; charset=utf-8")

    @app.get(prefix + "/summary.json")
    async def summary_json(request: Request) -> Response:
        view = await view_or_503()
        if isinstance(view, Response):
            return view
        body = summary(view).model_dump_json().encode()
        return cached(request, body, "application/json")

    @app.get(prefix + "/status.css")
    async def stylesheet(request: Request) -> Response:
        return cached(request, (STATIC / "status.css").read_bytes(), "text/css; charset=utf-8")

    @app.post(prefix + "/subscribe")
    async def subscribe(request: Request) -> Response:
        email, as_json = await _email_of(request)
        ctx = pages.ctx
        for limiter, key in ((pages.per_client, _client(request)), (pages.overall, "all")):
            retry_after = limiter.take(key)
            if retry_after is not None:
                return _too_many(retry_after, as_json, pages)
        address = valid_email(email)
        if address is None:
            message = "Enter one email address, like name@example.com."
            if as_json:
                detail = [{"loc": ["body", "email"], "msg": message, "type": "value_error"}]
                return JSONResponse({"detail": detail}, status_code=422, headers=HEADERS)
            return pages.html("message.html", 422, title="Not an email address", message=message)
        if ctx.settings.incidentflow_link_secret is None or ctx.temporal is None:
            message = "Subscriptions are not available on this server."
            if as_json:
                return JSONResponse({"detail": message}, status_code=503, headers=HEADERS)
            return pages.html("message.html", 503, title="Unavailable", message=message)
        try:
            await ctx.temporal_call(
                ctx.temporal.start_workflow(
                    StatusSubscriptionWorkflow.run,
                    SubscriptionRequest(email=address),
                    id=subscription_workflow_id(address),
                    task_queue=ctx.settings.temporal_task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                )
            )
        except (RPCError, TimeoutError):
            message = "Subscribing is unavailable right now; try again shortly."
            if as_json:
                return JSONResponse({"detail": message}, status_code=503, headers=HEADERS)
            return pages.html("message.html", 503, title="Unavailable", message=message)
        if as_json:
            return JSONResponse(
                {"status": "accepted", "message": ACCEPTED}, status_code=202, headers=HEADERS
            )
        return pages.html("message.html", 202, title="Check your inbox", message=ACCEPTED)

    def claim_or_page(token: str, purpose: str) -> str | Response:
        """The subscriber a valid link for ``purpose`` names, or the page saying why not."""
        if purpose not in LINKS:
            return pages.html("message.html", 404, title="Not found", message="No such page.")
        secret = pages.ctx.settings.incidentflow_link_secret
        if secret is None:
            return pages.html(
                "message.html",
                503,
                title="Unavailable",
                message="Subscriptions are not available on this server.",
            )
        try:
            claim = read_subscription(
                secret.get_secret_value().encode(),
                token,
                purpose=LINKS[purpose].purpose,
                now=datetime.now(UTC),
            )
        except InvalidSubscriptionToken as err:
            return pages.html("message.html", 403, title="Link not valid", message=f"{err}.")
        return claim.subscriber

    @app.get(prefix + "/subscriptions/{purpose}/{token}")
    async def link_page(purpose: str, token: str) -> Response:
        """One button, no change: mail scanners prefetch links."""
        claim = claim_or_page(token, purpose)
        if isinstance(claim, Response):
            return claim
        link = LINKS[purpose]
        return pages.html("act.html", title=link.title, button=link.button)

    @app.post(prefix + "/subscriptions/{purpose}/{token}")
    async def link_act(purpose: str, token: str) -> Response:
        claim = claim_or_page(token, purpose)
        if isinstance(claim, Response):
            return claim
        link = LINKS[purpose]
        try:
            if link.purpose == "confirm":
                done = await status_read.confirm_subscriber(pages.ctx.db(), claim)
            else:
                await status_read.unsubscribe(pages.ctx.db(), claim)
                done = True
        except (*_DB_DOWN, ServiceUnavailable):
            return pages.html(
                "message.html", 503, title="Unavailable", message="Try again shortly."
            )
        if not done:
            return pages.html(
                "message.html",
                409,
                title="Not subscribed",
                message="This address unsubscribed after asking; subscribe again to get updates.",
            )
        return pages.html("message.html", title=link.done_title, message=link.done)

    return app


def mount_status_page(app: FastAPI) -> None:
    """Put the status page in front of the API app's middleware (forms, not JSON)."""
    from starter.dashboard.routes import DashboardDispatch  # the same dispatch, another prefix

    status_app = create_status_app(lambda: app.state.ctx)
    app.state.status_app = status_app
    app.add_middleware(DashboardDispatch, prefix=links.STATUS_PREFIX, pages=status_app)
