"""Native REST routes: create, list, read, timeline, and one route per responder action.

Reads of one incident come live from its workflow while the run is open (the workflow is the
source of truth) and from the ticket in PostgreSQL once the run has completed, so completed
incidents need no worker to replay them; the ``X-Incident-Source`` header says which.

(No ``from __future__ import annotations`` here: the action routes are generated with
request models created at import time, and FastAPI reads their annotations at runtime.)
"""

from typing import Annotated, Any, Literal, get_args

import psycopg
from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from schemas.actions import ACTION_SPECS, ActionInput
from schemas.actors import Person
from schemas.enums import Action, Category, Impact, Scope, Severity, Status, Urgency
from schemas.incident import IncidentRef, IncidentSnapshot, Link, TimelineEvent
from starter import tickets_read
from starter.api import idempotency, ingest
from starter.api.auth import Ingest, Principal, Read, require
from starter.api.context import ApiContext, get_context
from starter.api.errors import ERROR_RESPONSES, ApiError
from starter.api.params import (
    NOT_BLANK_PATTERN,
    TARGET_PATTERN,
    TEXT_PATTERN,
    Instant,
    NumberPath,
)
from starter.errors import IncidentNotFound, ServiceUnavailable, UnknownService

Ctx = Annotated[ApiContext, Depends(get_context)]
ServiceName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=TEXT_PATTERN)]

#: URL segment of each action route (``schemas.actions.ACTION_SPECS``)
ACTION_ROUTES: dict[str, Action] = {
    spec.route: spec.action for spec in ACTION_SPECS.values() if spec.method == "POST"
}

_DB_DOWN = (psycopg.OperationalError, PoolTimeout)

router = APIRouter(prefix="/api/v1", tags=["incidents"], responses=ERROR_RESPONSES)


# ---------------------------------------------------------------------------- models
class CreateIncident(BaseModel):
    """A human or a monitoring system opens an incident (or repeats an open one's alert)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=1024)
    service: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="omit to let the classification rules pick it from the labels",
    )
    description: str = Field(default="", max_length=65536)
    dedup_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="alerts with the same key attach to one open incident; generated if absent",
    )
    severity: Severity | None = None
    impact: Impact | None = None
    urgency: Urgency | None = None
    category: Category | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)
    links: list[Link] = Field(default_factory=list)
    source: str = Field(default="api", min_length=1, max_length=100)
    occurred_at: Instant | None = None
    drill: bool = Field(
        default=False,
        strict=True,
        description="a game-day drill: marked DRILL everywhere, paged per the policy's "
        "drills section, left out of reports and similar incidents",
    )


class AlertAccepted(BaseModel):
    """``Prefer: respond-async``: Temporal holds the alert; its incident opens (or counts
    it) next. Find it by its ``dedup_key`` in the incident list or with the ticket."""

    status: Literal["accepted"] = "accepted"
    dedup_key: str


def wants_async(prefer: str | None) -> bool:
    """Whether a ``Prefer`` header (RFC 7240) asks for ``respond-async``."""
    return any(
        part.split(";", 1)[0].split("=", 1)[0].strip().lower() == "respond-async"
        for part in (prefer or "").split(",")
    )


class Timeline(BaseModel):
    number: str
    status: Status
    events: list[TimelineEvent]


#: what the workflow's validators refuse of a value its input type takes (``_check`` with
#: ``text=``, the escalation target's ``kind:name``): the request models refuse it with 422
#: and the document says so, where the workflow would only answer after the fact
FIELD_PATTERNS: dict[tuple[str, str], str] = {
    ("cancel", "reason"): NOT_BLANK_PATTERN,
    ("pause", "reason"): NOT_BLANK_PATTERN,
    ("assign", "user"): NOT_BLANK_PATTERN,
    ("notes", "text"): NOT_BLANK_PATTERN,
    ("status-updates", "text"): NOT_BLANK_PATTERN,
    ("escalate", "target"): TARGET_PATTERN,
}


#: fields whose wire type is stricter than the input model's (an instant: RFC 3339 only)
FIELD_TYPES: dict[tuple[str, str], Any] = {("pause", "until"): Instant | None}


#: (route, input field) -> its name in the request body: a link's other incident is the
#: body's ``number`` (the input's own ``number`` is the path's)
FIELD_NAMES: dict[tuple[str, str], str] = {("links", "other"): "number"}


def request_model(
    segment: str, input_type: type[ActionInput], name: str | None = None
) -> type[BaseModel]:
    """The body of an action route: the action's input without ``actor``, ``number`` (the
    actor is the token's user; the number is in the path) and the internal ``inverse``."""
    fields: dict[str, Any] = {}
    for field_name, info in input_type.model_fields.items():
        if field_name in ("actor", "number", "inverse"):
            continue
        name_in_body = FIELD_NAMES.get((segment, field_name), field_name)
        annotation: Any = FIELD_TYPES.get((segment, field_name), info.annotation)
        pattern = FIELD_PATTERNS.get((segment, field_name))
        if pattern is not None:
            text = Annotated[str, StringConstraints(pattern=pattern)]
            annotation = text | None if type(None) in get_args(annotation) else text
        fields[name_in_body] = (annotation, info)
    name = name or "".join(part.capitalize() for part in segment.split("-")) + "Request"
    model: type[BaseModel] = create_model(
        name, __config__=ConfigDict(extra="forbid"), __doc__=input_type.__doc__, **fields
    )
    return model


# ---------------------------------------------------------------------------- helpers
async def ensure_may_exist(ctx: ApiContext, number: str) -> None:
    """404 at once for a number above the sequence's high-water mark: it was never allocated,
    so there is no need to wait on (eventually consistent) visibility to say so. The same
    read gives the ticket's workflow id, which the client keeps for the action that follows
    (one round trip to PostgreSQL per action, not two)."""
    if ctx.pool is None:
        return
    try:
        highest, workflow_id = await tickets_read.highest_number_and_workflow(ctx.pool, number)
    except _DB_DOWN:
        return
    if workflow_id is not None and ctx.incidents is not None:
        ctx.incidents.remember(number, workflow_id)
    elif int(number.removeprefix("INC-")) > highest:
        raise IncidentNotFound(f"no incident {number}")


async def _run_is_live(ctx: ApiContext, row: tickets_read.Ticket) -> bool:
    """Whether the ticket's run is still open; when Temporal cannot tell, the ticket serves.
    A closed ticket is final (its run may have continued as the key's next incident)."""
    if row.snapshot.status == Status.CLOSED:
        return False
    client = ctx.client().client
    handle = client.get_workflow_handle(row.workflow_id, run_id=row.run_id or None)
    try:
        description = await ctx.temporal_call(handle.describe())
    except (RPCError, TimeoutError):
        return False
    return description.status in (
        WorkflowExecutionStatus.RUNNING,
        WorkflowExecutionStatus.CONTINUED_AS_NEW,
    )


async def load_incident(ctx: ApiContext, number: str) -> tuple[IncidentSnapshot, str]:
    """The incident with its timeline, and where it came from (``live`` or ``ticket``)."""
    await ensure_may_exist(ctx, number)
    row = None
    if ctx.pool is not None:
        try:
            row = await tickets_read.ticket(ctx.pool, number)
        except _DB_DOWN:
            row = None
    if row is not None and ctx.pool is not None and not await _run_is_live(ctx, row):
        events = await tickets_read.events(ctx.pool, number)
        return row.snapshot.model_copy(update={"timeline": events}), "ticket"
    try:
        snapshot = await ctx.temporal_call(ctx.client().get(number))
    except (TimeoutError, ServiceUnavailable):
        if row is None:
            raise
        # Temporal is down: the last written ticket is better than nothing
        assert ctx.pool is not None
        events = await tickets_read.events(ctx.pool, number)
        return row.snapshot.model_copy(update={"timeline": events}), "ticket"
    return snapshot, "live"


# ---------------------------------------------------------------------------- routes
@router.post(
    "/incidents",
    status_code=201,
    response_model=IncidentRef,
    responses={
        200: {"model": IncidentRef, "description": "attached to the open incident of its key"},
        201: {"description": "a new incident was opened"},
        202: {
            "model": AlertAccepted,
            "description": "Prefer: respond-async: accepted, the incident opens next",
        },
    },
    summary="Open an incident",
)
async def create_incident(
    body: CreateIncident,
    principal: Ingest,
    ctx: Ctx,
    response: Response,
    request: Request,
    prefer: Annotated[
        str | None,
        Header(
            max_length=1024,
            description="respond-async: answer 202 once Temporal holds the alert, "
            "without waiting for the incident's number",
        ),
    ] = None,
) -> Any:
    try:
        alert = ingest.build_alert(
            ctx.policy,
            title=body.title,
            service=body.service,
            labels=body.labels,
            source=body.source,
            actor=Person(name=principal.user),
            dedup_key=body.dedup_key,
            description=body.description,
            severity=body.severity,
            impact=body.impact,
            urgency=body.urgency,
            category=body.category,
            details=body.details,
            links=body.links,
            occurred_at=body.occurred_at,
            drill=body.drill,
        )
    except ValueError as exc:
        raise UnknownService(str(exc)) from exc  # no service named, none routed by a rule
    alert_id = idempotency.update_id(request.headers, principal.token)
    if alert_id:  # the incident counts a resend of this id once, whichever run it reaches
        alert = alert.model_copy(update={"alert_id": alert_id})
    if wants_async(prefer):
        key = await ingest.enqueue(ctx, alert)
        return JSONResponse(
            AlertAccepted(dedup_key=key).model_dump(),
            status_code=202,
            headers={"Preference-Applied": "respond-async"},
        )
    ref = await ingest.trigger(ctx, alert)
    response.status_code = 201 if ref.created else 200
    response.headers["Location"] = f"/api/v1/incidents/{ref.number}"
    return ref


@router.get("/incidents", response_model=tickets_read.IncidentPage, summary="List incidents")
async def list_incidents(
    _: Read,
    ctx: Ctx,
    status: Annotated[list[Status] | None, Query(description="repeatable")] = None,
    severity: Annotated[list[Severity] | None, Query(description="repeatable")] = None,
    service: Annotated[list[ServiceName] | None, Query(description="repeatable")] = None,
    since: Annotated[Instant | None, Query(description="created at or after")] = None,
    until: Annotated[Instant | None, Query(description="created before")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None,
        Query(
            pattern=tickets_read.CURSOR_PATTERN,
            max_length=tickets_read.CURSOR_MAX_LENGTH,
            description="the previous page's next_cursor",
        ),
    ] = None,
) -> tickets_read.IncidentPage:
    filters = tickets_read.ListFilters(
        statuses=status or [],
        severities=severity or [],
        services=service or [],
        since=since,
        until=until,
    )
    try:
        return await tickets_read.list_incidents(ctx.db(), filters, limit=limit, cursor=cursor)
    except tickets_read.InvalidCursor as exc:
        raise ApiError(
            422,
            str(exc),
            details=[{"loc": ["query", "cursor"], "field": "query.cursor", "message": str(exc)}],
        ) from exc


@router.get("/incidents/{number}", response_model=IncidentSnapshot, summary="One incident")
async def get_incident(
    number: NumberPath, _: Read, ctx: Ctx, response: Response
) -> IncidentSnapshot:
    snapshot, source = await load_incident(ctx, number)
    response.headers["X-Incident-Source"] = source
    return snapshot


@router.get("/incidents/{number}/timeline", response_model=Timeline, summary="Its timeline")
async def get_timeline(number: NumberPath, _: Read, ctx: Ctx, response: Response) -> Timeline:
    snapshot, source = await load_incident(ctx, number)
    response.headers["X-Incident-Source"] = source
    return Timeline(number=snapshot.number, status=snapshot.status, events=snapshot.timeline)


def _add_action_route(segment: str, action: Action) -> None:
    spec = ACTION_SPECS[action]
    input_type = spec.input_type
    own_name = None if spec.method == "POST" else f"{spec.update.capitalize()}Request"
    model = request_model(segment, input_type, own_name)
    renamed = {body: field for (route, field), body in FIELD_NAMES.items() if route == segment}
    required = any(f.is_required() for f in model.model_fields.values())
    Respond = Annotated[Principal, Depends(require(Scope.RESPOND))]

    async def run(
        ctx: ApiContext,
        number: str,
        principal: Principal,
        body: BaseModel | None,
        request: Request,
    ) -> IncidentSnapshot:
        await ensure_may_exist(ctx, number)
        values = body.model_dump() if body is not None else {}
        values = {renamed.get(k, k): v for k, v in values.items()}
        data = input_type.model_validate({**values, "actor": Person(name=principal.user)})
        action_id = idempotency.update_id(request.headers, principal.token)
        return await ctx.temporal_call(ctx.client().act(number, action, data, action_id=action_id))

    if required:

        async def handler(
            number: NumberPath,
            body: Annotated[model, Body()],  # type: ignore[valid-type]
            principal: Respond,
            ctx: Ctx,
            request: Request,
        ) -> IncidentSnapshot:
            return await run(ctx, number, principal, body, request)

    else:

        async def handler(  # type: ignore[misc]
            number: NumberPath,
            principal: Respond,
            ctx: Ctx,
            request: Request,
            body: Annotated[model | None, Body()] = None,  # type: ignore[valid-type]
        ) -> IncidentSnapshot:
            return await run(ctx, number, principal, body, request)

    handler.__name__ = f"{action.value}_incident"
    router.add_api_route(
        f"/incidents/{{number}}/{segment}",
        handler,
        methods=[spec.method],
        response_model=IncidentSnapshot,
        summary=f"{action.value.replace('_', ' ').capitalize()} (actor: the token's user)",
        description=(input_type.__doc__ or "").strip() or None,
    )


for _spec in ACTION_SPECS.values():
    _add_action_route(_spec.route, _spec.action)
