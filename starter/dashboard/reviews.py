"""The dashboard's review pages: the review section of the incident page (``_review.html``),
its forms (complete the review; close, cancel or reopen an action item), the postmortem and
invite downloads, and the "Action items" page (mine, overdue, all open).

Everything goes through the same code as the HTTP API (``starter.api.reviews``): the view
of a review, the review workflow's Updates and their validators, so the dashboard allows
exactly what the API allows.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from temporalio.service import RPCError

from schemas.enums import Scope
from schemas.review import (
    ActionItemChange,
    ActionItemInput,
    ActionItemStatus,
    CompleteReviewInput,
    action_item_problem,
)
from schemas.review_schedule import action_item_due
from starter import review_queries
from starter.api import reviews as api
from starter.api.context import ApiContext
from starter.dashboard.pages import (
    DB_DOWN,
    NUMBER,
    SECURITY_HEADERS,
    Dashboard,
    ctx_of,
    error_page,
    page_user,
    render,
)
from starter.dashboard.session import SessionUser, check_csrf
from starter.errors import (
    ActionRejected,
    IncidentNotFound,
    InvalidAction,
    ServiceUnavailable,
)
from starter.reviews_client import NotAllowed, ReviewFinished

#: the item views of the "Action items" page
VIEWS = {"mine": "Mine", "overdue": "Overdue", "open": "All open", "closed": "Done or cancelled"}
ITEM_LINE = re.compile(r"^\s*([^:]+?)\s*:\s*(.+?)\s*(?:@\s*(\S+))?\s*$")


async def review_view(ctx: ApiContext, number: str) -> api.ReviewView | None:
    """The incident page's review: ``None`` without one. The ``reviews`` row is checked
    first, so incidents without a review cost no Temporal call; when Temporal cannot answer,
    the stored row still shows (without the live meeting details)."""
    if ctx.pool is None:
        return None
    try:
        async with ctx.pool.connection() as conn:
            row = await review_queries.review(conn, number)
            if row is None:
                return None
            items = await review_queries.action_items(
                conn, review_queries.ItemFilters(number=number)
            )
    except DB_DOWN:
        return None
    try:
        return await api.review_view(ctx, await ctx.temporal_call(api.reviews(ctx).get(number)))
    except (IncidentNotFound, ServiceUnavailable, TimeoutError, RPCError):
        now = datetime.now(UTC)
        return api.ReviewView(
            number=number,
            status=row.status,
            workflow_id=row.workflow_id or "",
            facilitator=row.facilitator,
            attendees=row.attendees,
            summary=row.summary,
            completed_at=row.completed_at,
            postmortem=row.document,
            action_items=[api.item_view(i, now) for i in items],
        )


def _lines(value: Any) -> list[str]:
    return [line.strip() for line in str(value or "").splitlines() if line.strip()]


def _due_of(text: str | None) -> tuple[date | None, datetime | None]:
    """A form's due: ``2026-12-01`` or an ISO instant with offset."""
    if not text:
        return None, None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text), None
        at = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidAction(f"due {text!r}: use a date like 2026-12-01") from None
    if at.tzinfo is None:
        raise InvalidAction(f"due {text!r}: give a UTC offset, or just a date")
    return None, at


def parse_items(ctx: ApiContext, text: Any) -> list[ActionItemInput]:
    """One action item per line: ``owner: title`` or ``owner: title @ 2026-12-01``."""
    items = []
    for n, line in enumerate(_lines(text), start=1):
        match = ITEM_LINE.match(line)
        if not match:
            raise InvalidAction(f"action item line {n}: write owner: title @ 2026-12-01")
        owner, title, due = match.groups()
        if ctx.policy.user(owner) is None:
            raise InvalidAction(f"action item line {n}: unknown user {owner!r}")
        due_date, due_at = _due_of(due)
        items.append(ActionItemInput(owner=owner, title=title, due_date=due_date, due_at=due_at))
    return items


def add_review_routes(router: APIRouter, dash: Dashboard, guarded: Any) -> None:
    """Add the review pages and forms to the dashboard's router."""

    def refused(request: Request, user: SessionUser, err: Exception) -> Response:
        status = 422
        if isinstance(err, (ActionRejected, ReviewFinished)):
            status = 409
        elif isinstance(err, NotAllowed):
            status = 403
        elif isinstance(err, ValidationError):
            message = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
            )
            return error_page(dash, request, user, 422, message)
        return error_page(dash, request, user, status, str(err))

    async def form_of(request: Request, user: SessionUser) -> dict[str, str] | Response:
        form = await request.form()
        if not check_csrf(user, str(form.get("csrf") or "")):
            return error_page(
                dash, request, user, 403, "The form expired (CSRF check failed); reload the page."
            )
        return {k: v for k, v in form.items() if isinstance(v, str)}

    @router.post("/incidents/{number}/review/complete")
    @guarded
    async def complete(request: Request, number: str) -> Response:
        user = page_user(dash, request, Scope.RESPOND)
        fields = await form_of(request, user)
        if isinstance(fields, Response):
            return fields
        if not NUMBER.match(number):
            raise IncidentNotFound(f"no incident {number}")
        ctx = ctx_of(request)
        try:
            data = CompleteReviewInput(
                actor=user.user,
                summary=fields.get("summary", "").strip(),
                contributing_factors=_lines(fields.get("contributing_factors")),
                what_went_well=_lines(fields.get("what_went_well")),
                what_to_improve=_lines(fields.get("what_to_improve")),
                action_items=parse_items(ctx, fields.get("action_items")),
            )
            await ctx.temporal_call(api.reviews(ctx).complete(number, data))
        except (ValidationError, ActionRejected, InvalidAction, NotAllowed) as err:
            return refused(request, user, err)
        target = dash.url(f"/incidents/{number}") + "?review=completed#review"
        return RedirectResponse(target, status_code=303)

    @router.post("/action-items/{item_id}")
    @guarded
    async def change_item(request: Request, item_id: str) -> Response:
        user = page_user(dash, request, Scope.RESPOND)
        fields = await form_of(request, user)
        if isinstance(fields, Response):
            return fields
        ctx = ctx_of(request)
        item = None
        if item_id.isdigit() and 0 < int(item_id) < 2**63:
            async with ctx.db().connection() as conn:
                item = await review_queries.action_item(conn, int(item_id))
        if item is None:
            raise IncidentNotFound(f"no action item {item_id}")
        try:
            owner = fields.get("owner", "").strip() or None
            if owner is not None and ctx.policy.user(owner) is None:
                raise InvalidAction(f"unknown user {owner!r}")
            due_date, due_at = _due_of(fields.get("due", "").strip() or None)
            if due_date is not None or due_at is not None:
                due_date, due_at = action_item_due(due_date, due_at, ctx.policy.review)
            status = fields.get("status") or None
            change = ActionItemChange(
                actor=user.user,
                id=item.id,
                status=ActionItemStatus(status) if status else None,
                owner=owner,
                due_date=due_date,
                due_at=due_at,
            )
            if change.status is None and not change.changes_plan():
                raise InvalidAction("nothing to change")
            problem = action_item_problem(item, change)
            if problem:
                raise ActionRejected(problem)
            try:
                await ctx.temporal_call(api.reviews(ctx).update_action_item(item.number, change))
            except ReviewFinished:
                async with ctx.db().connection() as conn:
                    await review_queries.change_finished_item(conn, change)
        except (ValueError, ActionRejected, InvalidAction) as err:
            return refused(request, user, err)
        back = fields.get("next") or ""
        if not (back.startswith(dash.url("/")) and "//" not in back[1:] and "\\" not in back):
            back = dash.url(f"/incidents/{item.number}") + "#review"
        return RedirectResponse(back, status_code=303)

    @router.get("/action-items")
    @guarded
    async def items_page(request: Request) -> Response:
        user = page_user(dash, request)
        view = request.query_params.get("view") or "mine"
        if view not in VIEWS:
            view = "mine"
        now = datetime.now(UTC)
        filters = review_queries.ItemFilters(now=now, limit=500)
        if view == "mine":
            filters.owner, filters.status = user.user, ActionItemStatus.OPEN
        elif view == "overdue":
            filters.overdue = True
        elif view == "open":
            filters.status = ActionItemStatus.OPEN
        async with ctx_of(request).db().connection() as conn:
            items = await review_queries.action_items(conn, filters)
        if view == "closed":
            items = [i for i in items if i.status != ActionItemStatus.OPEN]
        return render(
            dash,
            request,
            "action_items.html",
            user,
            active="action-items",
            items=[api.item_view(i, now) for i in items],
            view=view,
            views=VIEWS,
            can_respond=user.allows(Scope.RESPOND),
        )

    @router.get("/incidents/{number}/review/postmortem.md")
    @guarded
    async def postmortem(request: Request, number: str) -> Response:
        page_user(dash, request)
        if not NUMBER.match(number):
            raise IncidentNotFound(f"no incident {number}")
        async with ctx_of(request).db().connection() as conn:
            row = await review_queries.review(conn, number)
        if row is None or not row.document:
            raise IncidentNotFound(f"{number} has no postmortem")
        headers = {**SECURITY_HEADERS, "Content-Type": api.MARKDOWN}
        return Response(row.document, headers=headers)

    @router.get("/incidents/{number}/review/invite.ics")
    @guarded
    async def invite(request: Request, number: str) -> Response:
        page_user(dash, request)
        if not NUMBER.match(number):
            raise IncidentNotFound(f"no incident {number}")
        ctx = ctx_of(request)
        state = await api.review_state(ctx, number)
        if state.start is None:
            raise IncidentNotFound(f"the review of {number} has no meeting yet")
        headers = {
            **SECURITY_HEADERS,
            "Content-Type": api.CALENDAR,
            "Content-Disposition": f'attachment; filename="{number}-review.ics"',
        }
        return Response(api.invite_ics(ctx, state), headers=headers)
