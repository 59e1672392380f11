"""One incident's page (``/incidents/{number}``), its body refreshed in place (``/_body``),
and its action forms (``/act``), which act through ``IncidentClient.act`` like the API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from schemas import links
from schemas.actions import ACTION_SPECS
from schemas.enums import Action, EventKind, LinkKind, Scope
from schemas.incident import IncidentSnapshot
from schemas.incident_links import LinkedIncident
from schemas.lifecycle import OPEN_STATUSES, handed_over, is_legal
from schemas.similarity import SimilarIncident
from starter import knowledge_read, status_read
from starter.dashboard.forms import forms_for, parse_action
from starter.dashboard.pages import (
    DB_DOWN,
    NUMBER,
    ctx_of,
    dashboard_of,
    error_page,
    guarded,
    load_snapshot,
    page_user,
    render,
)
from starter.dashboard.reviews import review_view
from starter.dashboard.session import SessionUser, check_csrf
from starter.errors import ActionRejected, IncidentNotFound, InvalidAction, ServiceUnavailable
from starter.sla_clocks import clock_states

router = APIRouter()


def incident_values(
    request: Request,
    snapshot: IncidentSnapshot,
    user: SessionUser,
    review: Any,
    similar: list[SimilarIncident] | None = None,
    linked: list[LinkedIncident] | None = None,
) -> dict[str, Any]:
    ctx = ctx_of(request)
    notes = [e for e in snapshot.timeline if e.kind == EventKind.NOTE_ADDED]
    updates = [e for e in snapshot.timeline if e.kind == EventKind.STATUS_UPDATE_POSTED]
    return {
        "incident": snapshot,
        "is_open": snapshot.status in OPEN_STATUSES,
        "clocks": clock_states(snapshot, datetime.now(UTC)),
        "forms": forms_for(snapshot, ctx.policy) if user.allows(Scope.RESPOND) else [],
        "can_respond": user.allows(Scope.RESPOND),
        "notes": list(reversed(notes)),
        "updates": list(reversed(updates)),
        "timeline": list(reversed(snapshot.timeline)),
        "review": review,
        "similar": similar or [],
        "links": linked or [],
        "open_children": [
            link
            for link in linked or []
            if link.kind == LinkKind.PARENT_OF and link.status in OPEN_STATUSES
        ],
        "link_forms": is_legal(Action.UNLINK, snapshot.status)
        and not handed_over(snapshot.status, snapshot.review_workflow_id),
    }


async def incident_response(
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
    ctx = ctx_of(request)
    snapshot = await load_snapshot(ctx, number)
    review = await review_view(ctx, number)
    similar = await knowledge_read.similar(ctx.db(), number)
    linked = await knowledge_read.links(ctx.db(), number)
    values = incident_values(
        request, snapshot, user, review, similar.items if similar is not None else None, linked
    )
    try:
        values["told_about"], values["subscribers_told"] = await status_read.told_about_updates(
            ctx.db(), number
        )
    except (*DB_DOWN, ServiceUnavailable):
        values["told_about"], values["subscribers_told"] = {}, {}
    return render(
        dashboard_of(request),
        request,
        template,
        user,
        status=status,
        error=error,
        done=done,
        **values,
    )


@router.get("/incidents/{number}")
@guarded
async def incident(request: Request, number: str) -> Response:
    user = page_user(dashboard_of(request), request)
    done = request.query_params.get("done")
    done_label = ACTION_SPECS[Action(done)].label if done in {a.value for a in Action} else None
    return await incident_response(request, number, "incident.html", user, done=done_label)


@router.get("/incidents/{number}/_body")
@guarded
async def incident_body(request: Request, number: str) -> Response:
    user = page_user(dashboard_of(request), request)
    return await incident_response(request, number, "_incident_body.html", user)


@router.post("/incidents/{number}/act")
@guarded
async def act(request: Request, number: str) -> Response:
    dash = dashboard_of(request)
    user = page_user(dash, request, Scope.RESPOND)
    form = await request.form()
    if not check_csrf(user, str(form.get("csrf") or "")):
        return error_page(
            dash, request, user, 403, "The form expired (CSRF check failed); reload the page."
        )
    if not NUMBER.match(number):
        raise IncidentNotFound(f"no incident {number}")
    try:
        action = Action(str(form.get("action") or ""))
    except ValueError:
        return error_page(dash, request, user, 422, "Unknown action.")
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    ctx = ctx_of(request)
    try:
        data = parse_action(action, fields, user.user)
        await ctx.temporal_call(ctx.client().act(number, action, data))
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        return await incident_response(
            request, number, "incident.html", user, status=422, error=problems
        )
    except ActionRejected as err:
        return await incident_response(
            request, number, "incident.html", user, status=409, error=str(err)
        )
    except InvalidAction as err:
        return await incident_response(
            request, number, "incident.html", user, status=422, error=str(err)
        )
    return RedirectResponse(
        dash.url(links.incident_path(number)) + f"?done={action.value}", status_code=303
    )
