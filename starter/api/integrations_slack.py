"""The Slack app's endpoints (docs/slack.md): button presses on pages, and ``/incident``.

``POST /api/v1/integrations/slack/interactions`` and ``POST /api/v1/integrations/slack/commands``
take Slack's form bodies. Each is verified first (``slack_inbound``: signature, age, replay;
401 otherwise, before anything is read), then the Slack user is mapped to a policy user
(``users[].slack_id``; an unknown user gets an ephemeral error and nothing changes). Actions
run as that person through ``IncidentClient.act``, the same Update path as the API, CLI and
dashboard, so an illegal one is refused by the workflow's validator with the message naming
the status. Slack's 3 seconds: the request is answered at once and the work runs in the
background, answering through ``response_url``; the page itself is rewritten by the
incident's workflow (``chat.update``) once its status changes.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.actions import ACTION_SPECS, ActionInput
from schemas.actors import Person
from schemas.enums import Action
from schemas.oncall import on_call
from schemas.slack_messages import BUTTON_ACTIONS
from starter.api import ingest
from starter.api.context import ApiContext, get_context
from starter.api.errors import ApiError
from starter.api.slack_inbound import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SlackInbound,
    person,
    respond,
    unknown_user_text,
)
from starter.errors import IncidentError
from starter.slack_commands import ACTION_VERBS, HELP, CommandError, SlashCommand, Verb, parse

log = logging.getLogger("incidentflow.api.slack")

router = APIRouter(tags=["integrations"])

PREFIX = "/api/v1/integrations/slack"
#: the field of each action's input that takes the text typed after the command
TEXT_FIELDS: dict[Action, str] = {
    Action.ACKNOWLEDGE: "note",
    Action.MITIGATE: "note",
    Action.RESOLVE: "resolution",
    Action.ADD_NOTE: "text",
    Action.ESCALATE: "reason",
}
#: incidents ``/incident list`` shows
LIST_LIMIT = 20


class _SlackModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class SlackUser(_SlackModel):
    id: str = Field(min_length=1)


class SlackAction(_SlackModel):
    action_id: str = Field(min_length=1)
    value: str | None = None


class SlackInteraction(_SlackModel):
    """The ``payload`` of an interaction (a button pressed on a page)."""

    type: str
    user: SlackUser
    actions: list[SlackAction] = Field(default_factory=list)
    response_url: str | None = None


class SlackCommandRequest(_SlackModel):
    """A slash command's form fields, as Slack sends them."""

    command: str = Field(min_length=1)
    text: str = ""
    user_id: str = Field(min_length=1)
    channel_id: str = ""
    channel_name: str = ""
    response_url: str = Field(min_length=1)


class SlackAnswer(BaseModel):
    """An immediate answer to a slash command (Slack shows ``text``)."""

    response_type: str = "ephemeral"
    text: str


def _form_body(fields: list[str], required: list[str]) -> dict[str, Any]:
    """The OpenAPI request body of a Slack form post: string fields."""
    schema = {
        "type": "object",
        "properties": {name: {"type": "string"} for name in fields},
        "required": required,
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    }


_SIGNED = {
    "parameters": [
        {
            "name": SIGNATURE_HEADER,
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "v0=<hex HMAC-SHA256 of v0:<timestamp>:<body>> (401 when wrong)",
        },
        {
            "name": TIMESTAMP_HEADER,
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "Unix seconds; more than 5 minutes away is refused (401)",
        },
    ]
}

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "acknowledged; any later answer goes to response_url"},
    401: {"description": "unsigned, tampered, too old or replayed; nothing was changed"},
    422: {"description": "signed, but not a Slack request this endpoint understands"},
}


def slack_inbound(request: Request) -> SlackInbound:
    inbound: SlackInbound = request.app.state.slack_inbound
    return inbound


Ctx = Annotated[ApiContext, Depends(get_context)]
Inbound = Annotated[SlackInbound, Depends(slack_inbound)]


async def _verified_form(
    request: Request, ctx: ApiContext, inbound: SlackInbound
) -> dict[str, str]:
    body = await request.body()
    await inbound.verify(ctx.policy, request, body, ctx.pool)
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise ApiError(422, "the body is not UTF-8 form data") from None
    return {name: values[0] for name, values in fields.items()}


def _invalid(err: ValidationError, prefix: str) -> ApiError:
    details = [
        {"loc": [prefix, *err_loc["loc"]], "msg": err_loc["msg"]} for err_loc in err.errors()
    ]
    return ApiError(422, "not a Slack request this endpoint understands", details=details)


# ---------------------------------------------------------------------------- interactions
@router.post(
    f"{PREFIX}/interactions",
    status_code=200,
    response_class=Response,
    responses=_RESPONSES,
    openapi_extra=_form_body(["payload"], ["payload"]) | _SIGNED,
    summary="Slack interactivity: a button pressed on a page",
)
async def slack_interactions(request: Request, ctx: Ctx, inbound: Inbound) -> Response:
    form = await _verified_form(request, ctx, inbound)
    try:
        payload = json.loads(form.get("payload", ""))
    except ValueError:
        raise ApiError(422, "payload is not JSON", details=[{"loc": ["body", "payload"]}]) from None
    try:
        interaction = SlackInteraction.model_validate(payload)
    except ValidationError as err:
        raise _invalid(err, "payload") from None
    pressed = interaction.actions[0] if interaction.actions else None
    actions = {a.value: a for a in BUTTON_ACTIONS}
    if interaction.type != "block_actions" or pressed is None or pressed.action_id not in actions:
        return Response(status_code=200)  # the Open link, or nothing we offer
    url = interaction.response_url
    actor = person(ctx.policy, interaction.user.id)
    if actor is None:
        if url:
            inbound.start(respond(url, unknown_user_text(interaction.user.id)))
        return Response(status_code=200)
    number = pressed.value or ""
    inbound.start(_act(ctx, actor, number, actions[pressed.action_id], "", url))
    return Response(status_code=200)


async def _act(
    ctx: ApiContext, actor: Person, number: str, action: Action, text: str, url: str | None
) -> None:
    """Run ``action`` as ``actor`` through the Update path and say how it went."""
    field = TEXT_FIELDS[action]
    try:
        data: ActionInput = ACTION_SPECS[action].input_type(
            actor=actor, **({field: text} if text else {})
        )
        snapshot = await ctx.temporal_call(ctx.client().act(number, action, data))
    except (IncidentError, ValidationError, TimeoutError) as err:
        answer = _failure(number, err)
    except Exception:
        log.exception("Slack %s on %s failed", action.value, number)
        answer = (
            f"{number}: {ACTION_SPECS[action].label} failed unexpectedly; see incidentflow's logs"
        )
    else:
        answer = (
            f"{number} is {snapshot.status.value}: {ACTION_SPECS[action].label} "
            f"by {actor.name} recorded."
        )
    if url:
        await respond(url, answer)


def _failure(number: str, err: Exception) -> str:
    if isinstance(err, TimeoutError):
        return f"{number}: no answer from incidentflow in time; try again"
    if isinstance(err, ValidationError):
        return f"{number}: {err.errors()[0]['msg']}"
    return str(err)


# ---------------------------------------------------------------------------- /incident
@router.post(
    f"{PREFIX}/commands",
    status_code=200,
    response_model=SlackAnswer,
    responses=_RESPONSES,
    openapi_extra=_form_body(
        list(SlackCommandRequest.model_fields), ["command", "user_id", "response_url"]
    )
    | _SIGNED,
    summary="Slack slash command /incident",
)
async def slack_commands(request: Request, ctx: Ctx, inbound: Inbound) -> Response:
    form = await _verified_form(request, ctx, inbound)
    try:
        req = SlackCommandRequest.model_validate(form)
    except ValidationError as err:
        raise _invalid(err, "body") from None
    try:
        command = parse(req.text, req.channel_name)
    except CommandError as err:
        return _answer(str(err))
    if command.verb == Verb.HELP:
        return _answer(HELP)
    actor = person(ctx.policy, req.user_id)
    if actor is None:
        return _answer(unknown_user_text(req.user_id))
    if command.verb == Verb.ONCALL:
        return _answer(_oncall(ctx, command.text))
    inbound.start(_run(ctx, actor, command, req.response_url))
    return Response(status_code=200)


def _answer(text: str) -> JSONResponse:
    return JSONResponse(SlackAnswer(text=text).model_dump())


def _oncall(ctx: ApiContext, name: str) -> str:
    policy = ctx.policy
    schedules = [s for s in policy.schedules if not name or s.name == name]
    if name and not schedules:
        known = ", ".join(s.name for s in policy.schedules) or "none"
        return f"unknown schedule {name!r}; schedules: {known}"
    if not schedules:
        return "The policy has no on-call schedules."
    now = datetime.now(UTC)
    lines = []
    for schedule in schedules:
        people = []
        for user_name in on_call(schedule, now):
            user = policy.user(user_name)
            mention = f" (<@{user.slack_id}>)" if user is not None and user.slack_id else ""
            people.append(f"{user_name}{mention}")
        lines.append(f"*{schedule.name}*: {', '.join(people) or 'nobody'}")
    return "On call now:\n" + "\n".join(lines)


async def _run(ctx: ApiContext, actor: Person, command: SlashCommand, url: str) -> None:
    """The commands that talk to Temporal, after Slack got its answer."""
    try:
        if command.verb in ACTION_VERBS:
            assert command.number is not None
            await _act(ctx, actor, command.number, ACTION_VERBS[command.verb], command.text, url)
            return
        if command.verb == Verb.NEW:
            text, in_channel = await _new(ctx, actor, command), True
        elif command.verb == Verb.STATUS:
            assert command.number is not None
            text, in_channel = await _status(ctx, command.number), False
        else:
            text, in_channel = await _list(ctx), False
    except (IncidentError, ValueError, TimeoutError) as err:
        text, in_channel = _failure(command.number or "incidentflow", err), False
    except Exception:
        log.exception("Slack /incident %s failed", command.verb.value)
        text, in_channel = "incidentflow could not do that; see its logs", False
    await respond(url, text, in_channel=in_channel)


async def _new(ctx: ApiContext, actor: Person, command: SlashCommand) -> str:
    services = ctx.policy.services
    service = command.service or (services[0].name if len(services) == 1 else None)
    if service is None:
        known = ", ".join(s.name for s in services)
        return f"name the service: `/incident new <title> --service <name>` ({known})"
    alert = ingest.build_alert(
        ctx.policy,
        title=command.text,
        service=service,
        labels={},
        source="slack",
        actor=actor,
        severity=command.severity,
    )
    ref = await ingest.trigger(ctx, alert)
    return f"{ref.number} opened by {actor.name}: {command.text} ({service})"


async def _status(ctx: ApiContext, number: str) -> str:
    s = await ctx.temporal_call(ctx.client().get(number))
    lines = [
        f"*{s.number}* {s.title}",
        f"{s.status.value} · {s.severity.value} · {s.service} · level {s.escalation.level}",
    ]
    if s.responders:
        lines.append(", ".join(f"{role.value}: {who}" for role, who in s.responders.items()))
    return "\n".join(lines)


async def _list(ctx: ApiContext) -> str:
    rows = await ctx.temporal_call(ctx.client().list(open_only=True, limit=LIST_LIMIT))
    if not rows:
        return "No open incidents."
    return "Open incidents:\n" + "\n".join(
        f"*{r.number}* {r.status.value} · {r.severity.value} · {r.service}" for r in rows
    )


def install(app: FastAPI) -> SlackInbound:
    """Mount the routes and the state they keep (accepted signatures, background work)."""
    inbound = SlackInbound()
    app.state.slack_inbound = inbound
    app.include_router(router)
    return inbound
