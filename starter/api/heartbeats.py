"""Heartbeats: a dead man's switch per monitored job (docs/heartbeats.md).

``POST /api/v1/heartbeats/{name}`` (scope ``ingest``) says the job is alive. When the
heartbeat's ``interval`` (plus ``grace``) passes without a ping, incidentflow opens an
incident on its service; the next ping resolves it. ``POST /api/v1/heartbeats/{name}/alertmanager``
takes Alertmanager's webhook body, so its always-firing ``Watchdog`` alert is the ping: when
Prometheus or Alertmanager stops, the pings stop, and the incident says so.
``GET /api/v1/heartbeats`` (scope ``read``) lists every declared heartbeat and its state.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from schemas.actors import INCIDENTFLOW
from schemas.heartbeat import SOURCE, HeartbeatState, PingSource
from schemas.policy import Heartbeat
from schemas.workflow_ids import heartbeat_workflow_id
from starter import heartbeats_client
from starter.api import ingest
from starter.api.auth import Ingest, Read
from starter.api.context import ApiContext, get_context
from starter.api.errors import ERROR_RESPONSES, ApiError
from starter.api.integrations_alertmanager import AmWebhook

router = APIRouter(prefix="/api/v1/heartbeats", tags=["heartbeats"])

Ctx = Annotated[ApiContext, Depends(get_context)]
HeartbeatName = Annotated[
    str, PathParam(min_length=1, max_length=100, description="a heartbeat named in the policy")
]


class PingBody(BaseModel):
    """An optional body; the request needs none."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(
        default="", max_length=1024, description="kept in the incident a later miss opens"
    )


class PingResult(BaseModel):
    name: str
    service: str
    #: whether this request counted as a ping (Alertmanager: only while an alert fires)
    pinged: bool
    source: PingSource
    #: the next ping is due before this instant, or the heartbeat counts as missed
    expected_by: datetime | None
    workflow_id: str


class HeartbeatStatus(BaseModel):
    name: str
    service: str
    interval_seconds: float
    grace_seconds: float
    #: ``never_pinged``: nothing watched yet; ``ok``: the next ping is not yet due;
    #: ``missed``: an incident is open for the miss (``incident_workflow_id``)
    status: Literal["never_pinged", "ok", "missed"]
    last_ping: datetime | None = None
    expected_by: datetime | None = None
    missed_at: datetime | None = None
    incident_workflow_id: str | None = None
    pings: int = 0
    incidents: int = 0


class HeartbeatList(BaseModel):
    heartbeats: list[HeartbeatStatus]


def _status(heartbeat: Heartbeat, state: HeartbeatState | None) -> HeartbeatStatus:
    status = HeartbeatStatus(
        name=heartbeat.name,
        service=heartbeat.service,
        interval_seconds=heartbeat.interval.total_seconds(),
        grace_seconds=heartbeat.grace.total_seconds(),
        status="never_pinged",
    )
    if state is None:
        return status
    return status.model_copy(
        update={
            "status": "missed" if state.incident_workflow_id else "ok",
            "last_ping": state.last_ping,
            # the policy as now loaded; the workflow takes it with the next ping
            "expected_by": state.last_ping + heartbeat.deadline,
            "missed_at": state.missed_at,
            "incident_workflow_id": state.incident_workflow_id,
            "pings": state.pings,
            "incidents": state.incidents,
        }
    )


def _heartbeat(ctx: ApiContext, name: str) -> Heartbeat:
    heartbeat = ctx.policy.heartbeat(name)
    if heartbeat is None:
        known = ", ".join(h.name for h in ctx.policy.heartbeats) or "none"
        raise ApiError(404, f"unknown heartbeat {name!r}; known heartbeats: {known}")
    return heartbeat


async def _ping(
    ctx: ApiContext, heartbeat: Heartbeat, source: PingSource, message: str
) -> PingResult:
    alert = ingest.build_alert(
        ctx.policy,
        title=heartbeat.incident_title,
        service=heartbeat.service,
        labels={"heartbeat": heartbeat.name},
        source=SOURCE,
        actor=INCIDENTFLOW,
        description=heartbeat.description
        or f"No ping for heartbeat {heartbeat.name} within {heartbeat.deadline}.",
        severity=heartbeat.severity,
        details={"last_message": message, "last_source": source},
    )
    now = datetime.now(UTC)
    workflow_id = await ctx.temporal_call(
        heartbeats_client.ping(ctx.client(), heartbeat, alert, source)
    )
    return PingResult(
        name=heartbeat.name,
        service=heartbeat.service,
        pinged=True,
        source=source,
        expected_by=now + heartbeat.deadline,
        workflow_id=workflow_id,
    )


@router.get("", response_model=HeartbeatList, responses=ERROR_RESPONSES, summary="List heartbeats")
async def list_heartbeats(_: Read, ctx: Ctx) -> HeartbeatList:
    """Every heartbeat the policy declares, with what its workflow knows."""
    declared = list(ctx.policy.heartbeats)
    incidents = ctx.client()
    states = await ctx.temporal_call(
        asyncio.gather(*(heartbeats_client.state(incidents, h.name) for h in declared))
    )
    return HeartbeatList(heartbeats=[_status(h, s) for h, s in zip(declared, states, strict=True)])


@router.post(
    "/{name}",
    status_code=202,
    response_model=PingResult,
    responses=ERROR_RESPONSES,
    summary="Ping a heartbeat",
)
async def ping_heartbeat(
    name: HeartbeatName, _: Ingest, ctx: Ctx, body: PingBody | None = None
) -> PingResult:
    heartbeat = _heartbeat(ctx, name)
    return await _ping(ctx, heartbeat, "api", body.message if body else "")


@router.post(
    "/{name}/alertmanager",
    status_code=202,
    response_model=PingResult,
    responses=ERROR_RESPONSES,
    summary="Ping a heartbeat from Alertmanager (the Watchdog alert)",
)
async def alertmanager_watchdog(
    name: HeartbeatName, _: Ingest, ctx: Ctx, payload: AmWebhook
) -> PingResult:
    """A firing alert in the body is a ping; a resolved-only body (the Watchdog stopped
    firing) is not, so the heartbeat runs out as it would with no request at all."""
    heartbeat = _heartbeat(ctx, name)
    firing = [a for a in payload.alerts if a.status == "firing"]
    if not firing:
        return PingResult(
            name=heartbeat.name,
            service=heartbeat.service,
            pinged=False,
            source="alertmanager",
            expected_by=None,
            workflow_id=heartbeat_workflow_id(heartbeat.name),
        )
    names = sorted({a.labels.get("alertname", "") for a in firing} - {""})
    return await _ping(ctx, heartbeat, "alertmanager", ", ".join(names))
