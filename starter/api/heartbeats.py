"""Heartbeats: a dead man's switch per monitored job (docs/heartbeats.md).

``POST /api/v1/heartbeats/{name}`` (scope ``ingest``) says the job is alive. When the
heartbeat's ``interval`` (plus ``grace``) passes without a ping, incidentflow opens an
incident on its service; the next ping resolves it. ``POST /api/v1/heartbeats/{name}/alertmanager``
takes Alertmanager's webhook body, so its always-firing ``Watchdog`` alert is the ping: when
Prometheus or Alertmanager stops, the pings stop, and the incident says so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from schemas.actors import INCIDENTFLOW
from schemas.heartbeat import SOURCE, PingSource
from schemas.policy import Heartbeat
from schemas.workflow_ids import heartbeat_workflow_id
from starter import heartbeats_client
from starter.api import ingest
from starter.api.auth import Ingest
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
