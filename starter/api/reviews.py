"""Post-incident review routes: read a review, complete, reschedule or waive it, invite more
people, its postmortem (markdown) and invite (iCalendar), and its action items.

Changes go through the review workflow's Updates (``starter.reviews_client``), so the
workflow's validators decide what is allowed, exactly as for the CLI and the dashboard. An
Update that is illegal in the review's current status answers 409 naming that status. Reads
combine the workflow's live state (meeting, people, completion) with PostgreSQL (the stored
postmortem, the action items' current rows).

Action items have their own routes in ``starter.api.action_items``.
"""

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from schemas.enums import Scope
from schemas.links import review_url
from schemas.policy import Policy
from schemas.review import (
    ActionItem,
    ActionItemInput,
    CompleteReviewInput,
    ReviewInviteInput,
    ReviewState,
    ReviewStatus,
)
from schemas.review_calendar import build_invite, invitees
from starter import review_queries
from starter.api.auth import Principal, Read, Respond, require
from starter.api.context import ApiContext, get_context
from starter.api.errors import ERROR_RESPONSES, ApiError
from starter.api.incidents import ensure_may_exist
from starter.api.params import NOT_BLANK_PATTERN, TEXT_PATTERN, Instant, NumberPath
from starter.errors import IncidentNotFound
from starter.reviews_client import NotAllowed, ReviewClient, ReviewFinished

Ctx = Annotated[ApiContext, Depends(get_context)]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
Line = Annotated[str, StringConstraints(min_length=1, max_length=4000, pattern=NOT_BLANK_PATTERN)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=NOT_BLANK_PATTERN)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=65536, pattern=NOT_BLANK_PATTERN)]
#: marks a user-name field: ``document_policy_users`` lists the policy's users as its enum
POLICY_USER = "x-policy-user"
UserName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=TEXT_PATTERN),
    WithJsonSchema({"type": "string", POLICY_USER: True, "description": "a policy user"}),
]

router = APIRouter(prefix="/api/v1", tags=["reviews"], responses=ERROR_RESPONSES)

#: a due date (09:00 in the review zone) or an instant with a UTC offset
Due = Instant | date | None

MARKDOWN = "text/markdown; charset=utf-8"
CALENDAR = "text/calendar; charset=utf-8"


# ---------------------------------------------------------------------------- models
class NewActionItem(BaseModel):
    """An action item: what, who, and when it is due."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    owner: UserName
    due: Due = Field(
        default=None,
        description="an ISO date (due, and reminded, at 09:00 in the review zone) or an "
        "instant with a UTC offset",
        examples=["2026-12-01", "2026-12-01T16:00:00+01:00"],
    )

    def as_input(self) -> ActionItemInput:
        if isinstance(self.due, datetime):
            return ActionItemInput(owner=self.owner, title=self.title, due_at=self.due)
        return ActionItemInput(owner=self.owner, title=self.title, due_date=self.due)


class CompleteReviewRequest(BaseModel):
    """The review's outcome; completing it closes the incident."""

    model_config = ConfigDict(extra="forbid")

    summary: Text
    contributing_factors: list[Line] = Field(default_factory=list, max_length=100)
    what_went_well: list[Line] = Field(default_factory=list, max_length=100)
    what_to_improve: list[Line] = Field(default_factory=list, max_length=100)
    action_items: list[NewActionItem] = Field(default_factory=list, max_length=100)


class RescheduleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: Instant = Field(
        description="the new meeting start, with a UTC offset: in the future, within 366 days"
    )
    reason: Line | None = None


class WaiveRequest(BaseModel):
    """Skip the review (needs the admin scope); the meeting is cancelled."""

    model_config = ConfigDict(extra="forbid")

    reason: Line


class AttendeesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    people: list[UserName] = Field(
        min_length=1, max_length=100, description="users of the policy file"
    )


class ActionItemView(ActionItem):
    """An ``action_items`` row, and whether it is open past its due instant."""

    overdue: bool = False


class Meeting(BaseModel):
    start: datetime
    end: datetime
    zone: str
    #: iCalendar SEQUENCE of the current invite
    sequence: int


class ReviewView(BaseModel):
    number: str
    status: ReviewStatus
    workflow_id: str
    meeting: Meeting | None = None
    facilitator: str | None = None
    attendees: list[str] = Field(default_factory=list)
    owner: str | None = None
    overdue_at: datetime | None = None
    summary: str | None = None
    contributing_factors: list[str] = Field(default_factory=list)
    what_went_well: list[str] = Field(default_factory=list)
    what_to_improve: list[str] = Field(default_factory=list)
    completed_by: str | None = None
    completed_at: datetime | None = None
    waived_by: str | None = None
    waived_reason: str | None = None
    #: the stored postmortem (markdown): a draft until the review is completed
    postmortem: str | None = None
    action_items: list[ActionItemView] = Field(default_factory=list)
    links: dict[str, str] = Field(default_factory=dict)


# ---------------------------------------------------------------------------- helpers
def reviews(ctx: ApiContext) -> ReviewClient:
    return ReviewClient(ctx.client().client)


def unique_items(items: list[NewActionItem]) -> dict[tuple[str, str], ActionItemInput]:
    """One item per (title, owner), as the ``action_items`` table keys them: a repeat is the
    same item, its last due wins."""
    unique: dict[tuple[str, str], ActionItemInput] = {}
    for item in items:
        unique[(item.title.strip(), item.owner.strip())] = item.as_input()
    return unique


def is_overdue(item: ActionItem, now: datetime) -> bool:
    if item.status != "open":
        return False
    if item.due_at is not None:
        return item.due_at <= now
    return item.due_date is not None and item.due_date < now.date()


def item_view(item: ActionItem, now: datetime | None = None) -> ActionItemView:
    return ActionItemView(**item.model_dump(), overdue=is_overdue(item, now or datetime.now(UTC)))


def check_users(ctx: ApiContext, people: list[tuple[list[str | int], str]]) -> None:
    """422 naming each person (body path, name) the policy file does not know: nobody could
    reach them."""
    unknown = [
        {
            "loc": ["body", *loc],
            "field": ".".join(str(p) for p in loc),
            "message": f"unknown user {name!r} (not in the policy file)",
        }
        for loc, name in people
        if ctx.policy.user(name) is None
    ]
    if unknown:
        fields = ", ".join(str(d["field"]) for d in unknown)
        raise ApiError(422, f"invalid request: {fields}", details=unknown)


async def review_state(ctx: ApiContext, number: str) -> ReviewState:
    """The workflow's state; 404 saying why when the incident has no review."""
    await ensure_may_exist(ctx, number)
    try:
        return await ctx.temporal_call(reviews(ctx).get(number))
    except IncidentNotFound:
        raise IncidentNotFound(
            f"{number} has no post-incident review yet: closing it starts one (so does the "
            "end of its reopen window), unless its severity does not require one"
        ) from None


async def review_view(ctx: ApiContext, state: ReviewState) -> ReviewView:
    number = state.number
    async with ctx.db().connection() as conn:
        row = await review_queries.review(conn, number)
        items = await review_queries.action_items(conn, review_queries.ItemFilters(number=number))
    now = datetime.now(UTC)
    done = state.completion
    meeting = None
    if state.start is not None and state.end is not None:
        meeting = Meeting(
            start=state.start, end=state.end, zone=state.zone, sequence=state.sequence
        )
    base = f"/api/v1/incidents/{number}/review"
    return ReviewView(
        number=number,
        status=state.status,
        workflow_id=state.workflow_id,
        meeting=meeting,
        facilitator=state.facilitator,
        attendees=state.attendees,
        owner=state.owner,
        overdue_at=state.overdue_at if state.status == ReviewStatus.SCHEDULED else None,
        summary=done.summary if done else None,
        contributing_factors=done.contributing_factors if done else [],
        what_went_well=done.what_went_well if done else [],
        what_to_improve=done.what_to_improve if done else [],
        completed_by=done.completed_by if done else None,
        completed_at=done.completed_at if done else None,
        waived_by=state.waived_by,
        waived_reason=state.waived_reason,
        postmortem=row.document if row else None,
        action_items=[item_view(i, now) for i in items],
        links={
            "self": base,
            "postmortem": f"{base}/postmortem.md",
            "invite": f"{base}/invite.ics",
            "action_items": f"{base}/action-items",
            "dashboard": review_url(base_url(ctx), number),
        },
    )


def document_policy_users(app: FastAPI, policy: Policy) -> None:
    """The OpenAPI document lists the policy's users as the enum of every user-name field
    (owners, attendees): the API refuses anyone else, and a client can know it beforehand."""
    names = sorted({user.name for user in policy.users})
    generate = app.openapi

    def mark(node: Any) -> None:
        if isinstance(node, dict):
            if node.pop(POLICY_USER, False) and names:
                node["enum"] = names
            for value in node.values():
                mark(value)
        elif isinstance(node, list):
            for value in node:
                mark(value)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            mark(generate())
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def base_url(ctx: ApiContext) -> str:
    return ctx.settings.incidentflow_base_url or ctx.policy.base_url


def invite_ics(ctx: ApiContext, state: ReviewState) -> bytes:
    """The meeting's current invite, as mailed (a waived review's is its cancellation)."""
    if state.start is None or state.end is None:
        raise ApiError(
            409,
            f"the review of {state.number} is {state.status.value}: it has no meeting yet",
            code="action_rejected",
        )
    inc = state.incident
    invite = ReviewInviteInput(
        number=state.number,
        seq=inc.last_seq,
        title=inc.title,
        service=inc.service,
        severity=inc.severity.value,
        start=state.start,
        end=state.end,
        zone=state.zone,
        facilitator=state.facilitator,
        attendees=state.attendees,
        sequence=state.sequence,
        stamp=datetime.now(UTC).replace(microsecond=0),
        method="CANCEL" if state.status == ReviewStatus.WAIVED else "REQUEST",
    )
    listed = invitees(ctx.policy, invite, ctx.settings.smtp_from)
    link = review_url(base_url(ctx), state.number)
    return build_invite(invite, organizer=listed.organizer, attendees=listed.people, link=link)


async def finished(ctx: ApiContext, number: str, action: str) -> ApiError:
    """The 409 for an Update the finished review workflow can no longer take."""
    state = await review_state(ctx, number)
    detail = ""
    if state.status == ReviewStatus.COMPLETED:
        detail = " and all its action items are closed"
    return ApiError(
        409,
        f"cannot {action} the review of {number}: it is {state.status.value}{detail}",
        code="action_rejected",
        details={"status": state.status.value},
    )


async def changed(ctx: ApiContext, number: str, action: str, call: Any) -> ReviewView:
    """Run one review Update (``action`` names it in a 409); its new state as a view."""
    try:
        await ensure_may_exist(ctx, number)
    except IncidentNotFound:
        call.close()  # the Update coroutine is never started
        raise
    try:
        state: ReviewState = await ctx.temporal_call(call)
    except IncidentNotFound:
        await review_state(ctx, number)  # the "has no review" 404
        raise
    except NotAllowed as err:
        raise ApiError(403, str(err)) from err
    except ReviewFinished:
        raise await finished(ctx, number, action) from None
    return await review_view(ctx, state)


# ---------------------------------------------------------------------------- routes
@router.get("/incidents/{number}/review", response_model=ReviewView, summary="Its review")
async def get_review(number: NumberPath, _: Read, ctx: Ctx) -> ReviewView:
    return await review_view(ctx, await review_state(ctx, number))


@router.post(
    "/incidents/{number}/review/complete",
    response_model=ReviewView,
    summary="Complete the review (closes the incident; creates its action items)",
)
async def complete_review(
    number: NumberPath, body: CompleteReviewRequest, principal: Respond, ctx: Ctx
) -> ReviewView:
    check_users(
        ctx, [(["action_items", i, "owner"], a.owner) for i, a in enumerate(body.action_items)]
    )
    data = CompleteReviewInput(
        actor=principal.user,
        summary=body.summary,
        contributing_factors=body.contributing_factors,
        what_went_well=body.what_went_well,
        what_to_improve=body.what_to_improve,
        action_items=list(unique_items(body.action_items).values()),
    )
    return await changed(ctx, number, "complete", reviews(ctx).complete(number, data))


@router.post(
    "/incidents/{number}/review/reschedule",
    response_model=ReviewView,
    summary="Move the meeting (an updated invite: same UID, higher SEQUENCE)",
)
async def reschedule_review(
    number: NumberPath, body: RescheduleRequest, principal: Respond, ctx: Ctx
) -> ReviewView:
    call = reviews(ctx).reschedule(number, body.at, principal.user, body.reason)
    return await changed(ctx, number, "reschedule", call)


@router.post(
    "/incidents/{number}/review/waive",
    response_model=ReviewView,
    summary="Waive the review (admin scope): closes the incident, cancels the meeting",
)
async def waive_review(
    number: NumberPath, body: WaiveRequest, principal: Admin, ctx: Ctx
) -> ReviewView:
    call = reviews(ctx).waive(number, principal.user, body.reason, admin=True)
    return await changed(ctx, number, "waive", call)


@router.post(
    "/incidents/{number}/review/attendees",
    response_model=ReviewView,
    summary="Invite more people (they get the invite)",
)
async def add_attendees(
    number: NumberPath, body: AttendeesRequest, principal: Respond, ctx: Ctx
) -> ReviewView:
    check_users(ctx, [(["people", i], name) for i, name in enumerate(body.people)])
    call = reviews(ctx).add_attendees(number, principal.user, body.people)
    return await changed(ctx, number, "add attendees to", call)


@router.get(
    "/incidents/{number}/review/postmortem.md",
    response_class=Response,
    responses={200: {"content": {"text/markdown": {}}, "description": "the postmortem"}},
    summary="The postmortem (markdown; a draft until the review is completed)",
)
async def get_postmortem(number: NumberPath, _: Read, ctx: Ctx) -> Response:
    await ensure_may_exist(ctx, number)
    async with ctx.db().connection() as conn:
        row = await review_queries.review(conn, number)
    if row is None or not row.document:
        await review_state(ctx, number)  # 404 "has no review" when there is none
        raise IncidentNotFound(f"the postmortem of {number} is not written yet; try again")
    return Response(
        row.document,
        media_type=MARKDOWN,
        headers={"Content-Disposition": f'inline; filename="{number}-postmortem.md"'},
    )


@router.get(
    "/incidents/{number}/review/invite.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}, "description": "the invite"}},
    summary="The meeting invite (iCalendar; METHOD:CANCEL once waived)",
)
async def get_invite(number: NumberPath, _: Read, ctx: Ctx) -> Response:
    state = await review_state(ctx, number)
    return Response(
        invite_ics(ctx, state),
        media_type=CALENDAR,
        headers={"Content-Disposition": f'attachment; filename="{number}-review.ics"'},
    )


@router.post(
    "/incidents/{number}/review/action-items",
    status_code=201,
    response_model=ActionItemView,
    summary="Add an action item (tracked and reminded by the review)",
)
async def add_action_item(
    number: NumberPath, body: NewActionItem, principal: Respond, ctx: Ctx, response: Response
) -> ActionItemView:
    check_users(ctx, [(["owner"], body.owner)])
    await ensure_may_exist(ctx, number)
    try:
        item = await ctx.temporal_call(
            reviews(ctx).add_action_item(number, principal.user, body.as_input())
        )
    except IncidentNotFound:
        await review_state(ctx, number)
        raise
    except ReviewFinished:
        raise await finished(ctx, number, "add an action item to") from None
    response.headers["Location"] = f"/api/v1/action-items/{item.id}"
    return item_view(item)
