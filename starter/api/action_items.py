"""Action items across reviews: list them (by owner, status, overdue) and change one.

A change goes to the item's review workflow as the ``update_action_item`` Update: the
workflow writes the row (through an activity) and re-plans its reminders, so a done or
cancelled item is never reminded again. Only when that workflow has already finished (a
review completed before action items were tracked) is the row written here directly:
nothing is left to remind, so nothing needs stopping. Items are added under their review:
``POST /api/v1/incidents/{number}/review/action-items``.
"""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from schemas.review import ActionItemChange, ActionItemStatus, action_item_problem
from schemas.review_schedule import action_item_due
from starter import review_queries
from starter.api.auth import Read, Respond
from starter.api.context import ApiContext, get_context
from starter.api.errors import ERROR_RESPONSES, ApiError
from starter.api.params import TEXT_PATTERN
from starter.api.reviews import (
    POLICY_USER,
    ActionItemView,
    Due,
    UserName,
    check_users,
    item_view,
    reviews,
)
from starter.errors import IncidentNotFound
from starter.reviews_client import ReviewFinished

Ctx = Annotated[ApiContext, Depends(get_context)]
ItemId = Annotated[int, Path(ge=1, le=2**63 - 1, description="action item id")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=TEXT_PATTERN)]

router = APIRouter(prefix="/api/v1", tags=["action items"], responses=ERROR_RESPONSES)


class ActionItemPatch(BaseModel):
    """Any of: a new status (``done``/``cancelled`` stop its reminder, ``open`` reopens it),
    a new owner, a new due (``null`` drops it). An item must be open to change owner or due."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    # omitted means unchanged; the document says null is no value for either
    status: Annotated[
        ActionItemStatus | None,
        WithJsonSchema({"type": "string", "enum": [s.value for s in ActionItemStatus]}),
    ] = None
    owner: Annotated[
        UserName | None,
        WithJsonSchema({"type": "string", POLICY_USER: True, "description": "a policy user"}),
    ] = None
    due: Due = Field(
        default=None,
        description="an ISO date (09:00 in the review zone) or an instant with a UTC offset; "
        "null removes it",
    )


class ActionItemList(BaseModel):
    items: list[ActionItemView]


@router.get("/action-items", response_model=ActionItemList, summary="List action items")
async def list_action_items(
    _: Read,
    ctx: Ctx,
    owner: Annotated[Name | None, Query(description="its owner")] = None,
    status: Annotated[ActionItemStatus | None, Query()] = None,
    overdue: Annotated[bool, Query(description="only open items past their due")] = False,
    service: Annotated[Name | None, Query()] = None,
    number: Annotated[
        str | None, Query(pattern=r"^INC-[1-9][0-9]{0,17}$", description="incident")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> ActionItemList:
    now = datetime.now(UTC)
    filters = review_queries.ItemFilters(
        number=number,
        service=service,
        owner=owner,
        status=status,
        overdue=overdue,
        now=now,
        limit=limit,
    )
    async with ctx.db().connection() as conn:
        items = await review_queries.action_items(conn, filters)
    return ActionItemList(items=[item_view(i, now) for i in items])


@router.get("/action-items/{item_id}", response_model=ActionItemView, summary="One item")
async def get_action_item(item_id: ItemId, _: Read, ctx: Ctx) -> ActionItemView:
    async with ctx.db().connection() as conn:
        item = await review_queries.action_item(conn, item_id)
    if item is None:
        raise IncidentNotFound(f"no action item {item_id}")
    return item_view(item)


@router.patch(
    "/action-items/{item_id}",
    response_model=ActionItemView,
    summary="Mark done/cancelled, reopen, reassign or re-date an action item",
)
async def patch_action_item(
    item_id: ItemId, body: ActionItemPatch, principal: Respond, ctx: Ctx
) -> ActionItemView:
    given = {f for f in body.model_fields_set if f == "due" or getattr(body, f) is not None}
    if not given:
        raise ApiError(
            422,
            "nothing to change: give status, owner or due",
            details=[{"loc": ["body"], "field": "body", "message": "no change given"}],
        )
    if body.owner is not None:
        check_users(ctx, [(["owner"], body.owner)])
    async with ctx.db().connection() as conn:
        item = await review_queries.action_item(conn, item_id)
    if item is None:
        raise IncidentNotFound(f"no action item {item_id}")
    due_date, due_at = None, None
    if isinstance(body.due, datetime):
        due_date, due_at = action_item_due(None, body.due, ctx.policy.review)
    elif body.due is not None:
        due_date, due_at = action_item_due(body.due, None, ctx.policy.review)
    change = ActionItemChange(
        actor=principal.user,
        id=item_id,
        status=body.status,
        owner=body.owner,
        due_date=due_date,
        due_at=due_at,
        clear_due="due" in body.model_fields_set and body.due is None,
    )
    problem = action_item_problem(item, change)
    if problem:
        raise ApiError(409, problem, code="action_rejected")
    try:
        updated = await ctx.temporal_call(reviews(ctx).update_action_item(item.number, change))
    except ReviewFinished:
        async with ctx.db().connection() as conn:
            changed = await review_queries.change_finished_item(conn, change)
        if changed is None:
            raise IncidentNotFound(f"no action item {item_id}") from None
        updated = changed
    return item_view(updated)
