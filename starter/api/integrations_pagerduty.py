"""PagerDuty Events API v2 compatible endpoint: ``POST /v2/enqueue``.

A client written for PagerDuty works by changing only its base URL: the request body, the
``202 {"status": "success", "message": "Event processed", "dedup_key": ...}`` answer and the
``400 {"status": "invalid event", "message": ..., "errors": [...]}`` answer are PagerDuty's.

- ``routing_key`` is one of a service's ``integration_keys`` (the only credential).
- ``trigger`` opens an incident, or counts a repeat against the open one with the same
  ``dedup_key``; a missing ``dedup_key`` is generated and returned. The 202 comes as soon as
  Temporal durably holds the event (signal-with-start), as PagerDuty's own does: the number,
  ticket and pages follow (``IncidentClient.enqueue``).
- ``acknowledge`` / ``resolve`` act on the incident open for ``dedup_key`` (actor: the
  ``pagerduty`` integration). No open incident, or one already past that step: 202, nothing
  changes. An ``acknowledge`` counts as the incident's acknowledgement (a person acknowledged
  in the PagerDuty-side tool); a ``resolve`` does not (see ``schemas.lifecycle.acknowledges``).
  ``resolve`` on a service that does not auto-resolve only records the alert as cleared.
- ``payload.severity`` critical/error/warning/info → SEV1/SEV2/SEV3/SEV4. ``source``,
  ``component``, ``group`` and ``class`` become labels (so classification rules can match
  them); ``custom_details``, ``images``, ``client`` and ``timestamp`` are kept in the
  incident's details; ``links`` (and ``client_url``) become its links.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from schemas.actions import AcknowledgeInput, AlertClear, ResolveInput
from schemas.actors import PAGERDUTY
from schemas.enums import Action, Severity
from schemas.incident import Link
from schemas.policy import Service
from starter.api import ingest
from starter.api.auth import integration_service, verify_inbound_signature
from starter.api.context import ApiContext, get_context
from starter.api.errors import ApiError, PagerDutyError
from starter.api.params import Instant
from starter.errors import ActionRejected, IncidentNotFound

SEVERITIES: dict[str, Severity] = {
    "critical": Severity.SEV1,
    "error": Severity.SEV2,
    "warning": Severity.SEV3,
    "info": Severity.SEV4,
}

router = APIRouter(tags=["integrations"])


class PdLink(BaseModel):
    href: str = Field(min_length=1, max_length=4096)
    text: str = Field(default="", max_length=1024)


class PdImage(BaseModel):
    src: str = Field(min_length=1, max_length=4096)
    href: str | None = Field(default=None, max_length=4096)
    alt: str | None = Field(default=None, max_length=1024)


class PdPayload(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    summary: str = Field(min_length=1, max_length=1024)
    source: str = Field(min_length=1, max_length=255)
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: Instant | None = None
    component: str | None = Field(default=None, max_length=255)
    group: str | None = Field(default=None, max_length=255)
    class_: str | None = Field(default=None, alias="class", max_length=255)
    custom_details: Any = None


class PdEvent(BaseModel):
    """A PagerDuty Events API v2 event; unknown fields are accepted and ignored."""

    # what the handler requires of each action, in the document too (as PagerDuty's does):
    # a trigger carries its payload, acknowledge and resolve name their dedup_key
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "anyOf": [
                {
                    "properties": {
                        "event_action": {"const": "trigger"},
                        "payload": {"type": "object"},
                    },
                    "required": ["payload"],
                },
                {
                    "properties": {
                        "event_action": {"enum": ["acknowledge", "resolve"]},
                        "dedup_key": {"type": "string", "minLength": 1},
                    },
                    "required": ["dedup_key"],
                },
            ]
        },
    )

    routing_key: str = Field(min_length=1, max_length=256)
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: str | None = Field(default=None, max_length=255)
    payload: PdPayload | None = None
    client: str | None = Field(default=None, max_length=1024)
    client_url: str | None = Field(default=None, max_length=4096)
    links: list[PdLink] = Field(default_factory=list)
    images: list[PdImage] = Field(default_factory=list)


class PdAccepted(BaseModel):
    status: Literal["success"] = "success"
    message: str = "Event processed"
    dedup_key: str


def invalid_event(*errors: str) -> ApiError:
    return ApiError(400, "Event object is invalid", details=list(errors))


def _labels(payload: PdPayload) -> dict[str, str]:
    labels = {
        "source": payload.source,
        "severity": payload.severity,
        "component": payload.component,
        "group": payload.group,
        "class": payload.class_,
    }
    return {k: v for k, v in labels.items() if v}


async def _trigger(ctx: ApiContext, service: Service, event: PdEvent, key: str) -> None:
    payload = event.payload
    if payload is None:
        raise invalid_event("'payload' is missing or blank")
    links = [Link(href=link.href, text=link.text) for link in event.links]
    if event.client_url:
        links.append(Link(href=event.client_url, text=event.client or "Client"))
    alert = ingest.build_alert(
        ctx.policy,
        title=payload.summary,
        service=service.name,
        labels=_labels(payload),
        source="pagerduty",
        actor=PAGERDUTY,
        dedup_key=key,
        severity=SEVERITIES[payload.severity],
        details={
            "custom_details": payload.custom_details,
            "images": [i.model_dump(exclude_none=True) for i in event.images],
            "client": event.client,
            "timestamp": payload.timestamp.isoformat() if payload.timestamp else None,
        },
        links=links,
        occurred_at=payload.timestamp,
        drill=isinstance(payload.custom_details, dict)
        and ingest.is_drill(payload.custom_details.get("drill")),
    )
    await ingest.enqueue(ctx, alert)


async def _acknowledge_or_resolve(
    ctx: ApiContext, service: Service, action: Action, key: str
) -> None:
    client = ctx.client()
    if action == Action.RESOLVE and not service.auto_resolve:
        await ctx.temporal_call(client.clear(service.name, key, AlertClear(actor=PAGERDUTY)))
        return
    number = await ctx.temporal_call(client.open_incident_for_key(service.name, key))
    if number is None:
        return
    data = (
        AcknowledgeInput(actor=PAGERDUTY)
        if action == Action.ACKNOWLEDGE
        else ResolveInput(actor=PAGERDUTY, resolution="resolved by a PagerDuty event")
    )
    try:
        await ctx.temporal_call(client.act(number, action, data))
    except (ActionRejected, IncidentNotFound):
        pass  # already acknowledged/resolved, or closed meanwhile: PagerDuty answers 202


@router.post(
    "/v2/enqueue",
    status_code=202,
    response_model=PdAccepted,
    responses={
        400: {"model": PagerDutyError, "description": "invalid event"},
        401: {"description": "the service requires signed requests and this one is not"},
        413: {"model": PagerDutyError, "description": "event too large"},
        415: {"model": PagerDutyError, "description": "not JSON"},
        429: {"model": PagerDutyError, "description": "throttled"},
        503: {"model": PagerDutyError, "description": "try again later"},
    },
    summary="PagerDuty Events API v2 compatible",
)
async def enqueue(
    event: PdEvent, request: Request, ctx: Annotated[ApiContext, Depends(get_context)]
) -> PdAccepted:
    service = integration_service(ctx, event.routing_key)
    if service is None:
        raise invalid_event("'routing_key' is not a known integration key")
    await verify_inbound_signature(request, service)
    if event.event_action == "trigger":
        key = event.dedup_key or uuid.uuid4().hex
        await _trigger(ctx, service, event, key)
        return PdAccepted(dedup_key=key)
    if not event.dedup_key:
        raise invalid_event("'dedup_key' is missing or blank")
    action = Action.ACKNOWLEDGE if event.event_action == "acknowledge" else Action.RESOLVE
    await _acknowledge_or_resolve(ctx, service, action, event.dedup_key)
    return PdAccepted(dedup_key=event.dedup_key)
