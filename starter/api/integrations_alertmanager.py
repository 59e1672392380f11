"""Prometheus Alertmanager webhook receiver (webhook payload version 4).

Point a receiver at ``POST /api/v1/integrations/alertmanager/{integration_key}`` with
``send_resolved: true``; the key is one of the service's ``integration_keys`` and is the only
credential (a path secret, as Alertmanager's ``webhook_configs.url`` allows; it never appears
in metrics or errors).

- One incident per alert **fingerprint** (dedup key = fingerprint). With ``?group=true``, one
  incident per alert **group** (dedup key = ``groupKey``), titled from the common annotations.
- ``firing`` alerts trigger; for a key whose incident is already open that counts as a repeat.
  The answer (202) comes once Temporal durably holds each alert (signal-with-start), without
  waiting for numbers, tickets or pages: a storm is answered at the server's pace.
- ``resolved`` alerts clear their incident (which resolves it where the service's policy
  auto-resolves).
- Labels run through the policy's classification rules; the incident's service is the one the
  integration key belongs to. Unknown payload fields are accepted and ignored.

Severity from the ``severity`` label (case-insensitive); any other value leaves the severity
to the classification rules, then to impact and urgency:

==============================================  ========
``severity`` label                              severity
==============================================  ========
critical, emergency, fatal, page, p1, sev1      SEV1
high, error, major, p2, sev2                    SEV2
warning, warn, medium, moderate, p3, sev3       SEV3
info, informational, low, minor, none, p4, sev4 SEV4
==============================================  ========
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from schemas.actions import AlertClear
from schemas.actors import ALERTMANAGER
from schemas.enums import Severity
from schemas.incident import Alert, Link
from schemas.policy import Service
from starter.api import ingest
from starter.api.auth import integration_service, verify_inbound_signature
from starter.api.context import ApiContext, get_context
from starter.api.errors import ERROR_RESPONSES, ApiError
from starter.api.params import Instant

SEVERITY_LABELS: dict[str, Severity] = {
    **dict.fromkeys(("critical", "emergency", "fatal", "page", "p1", "sev1"), Severity.SEV1),
    **dict.fromkeys(("high", "error", "major", "p2", "sev2"), Severity.SEV2),
    **dict.fromkeys(("warning", "warn", "medium", "moderate", "p3", "sev3"), Severity.SEV3),
    **dict.fromkeys(
        ("info", "informational", "low", "minor", "none", "p4", "p5", "sev4"), Severity.SEV4
    ),
}

#: alerts of one payload handled at once (Temporal calls run concurrently up to this)
CONCURRENCY = 8

router = APIRouter(prefix="/api/v1/integrations", tags=["integrations"])


class AmAlert(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: Instant | None = Field(default=None, alias="startsAt")
    ends_at: Instant | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = Field(default="", max_length=255)


class AmWebhook(BaseModel):
    """Alertmanager's webhook body; fields not listed here are accepted and ignored."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    version: Literal["4"]
    group_key: str = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", strict=True)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[AmAlert] = Field(default_factory=list)


class AmOutcome(BaseModel):
    dedup_key: str
    status: Literal["firing", "resolved"]
    #: accepted (firing: handed to its incident, which opens, repeats or reopens) / cleared /
    #: no_open_incident
    action: Literal["accepted", "cleared", "no_open_incident"]


class AmResult(BaseModel):
    status: Literal["success"] = "success"
    results: list[AmOutcome]


def severity_from_labels(labels: dict[str, str]) -> Severity | None:
    value = labels.get("severity")
    return SEVERITY_LABELS.get(value.strip().lower()) if value else None


def _fingerprint(alert: AmAlert) -> str:
    """Alertmanager's fingerprint, or (if a sender left it out) a hash of the label set."""
    if alert.fingerprint:
        return alert.fingerprint
    canonical = json.dumps(sorted(alert.labels.items()), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _title(annotations: dict[str, str], labels: dict[str, str], fallback: str) -> str:
    for key in ("summary", "title", "message"):
        if annotations.get(key, "").strip():
            return annotations[key]
    name = labels.get("alertname", fallback)
    where = labels.get("instance") or labels.get("job")
    return f"{name} on {where}" if where else name


def _links(*candidates: tuple[str, str]) -> list[Link]:
    return [Link(href=href, text=text) for href, text in candidates if href.strip()]


def alert_from(service: Service, payload: AmWebhook, alert: AmAlert, policy: Any) -> Alert:
    """One Alertmanager alert as an incidentflow :class:`Alert` (fingerprint mode)."""
    annotations = alert.annotations
    return ingest.build_alert(
        policy,
        title=_title(annotations, alert.labels, "Alertmanager alert"),
        service=service.name,
        labels=alert.labels,
        source="alertmanager",
        actor=ALERTMANAGER,
        dedup_key=_fingerprint(alert),
        description=annotations.get("description", ""),
        severity=severity_from_labels(alert.labels),
        details={
            "annotations": annotations,
            "fingerprint": alert.fingerprint,
            "starts_at": alert.starts_at.isoformat() if alert.starts_at else None,
            "generator_url": alert.generator_url,
            "receiver": payload.receiver,
            "group_key": payload.group_key,
        },
        links=_links(
            (alert.generator_url, "Source"),
            (annotations.get("runbook_url", ""), "Runbook"),
            (annotations.get("dashboard_url", ""), "Dashboard"),
            (payload.external_url, "Alertmanager"),
        ),
        occurred_at=alert.starts_at,
        drill=ingest.is_drill(alert.labels.get(ingest.DRILL_LABEL)),
    )


def group_alert_from(service: Service, payload: AmWebhook, policy: Any) -> Alert:
    """The whole group as one :class:`Alert` (``?group=true``)."""
    labels = payload.common_labels or payload.group_labels
    firing = sum(1 for a in payload.alerts if a.status == "firing")
    title = _title(payload.common_annotations, payload.group_labels, "Alertmanager group")
    starts = [a.starts_at for a in payload.alerts if a.starts_at is not None]
    return ingest.build_alert(
        policy,
        title=title,
        service=service.name,
        labels=labels,
        source="alertmanager",
        actor=ALERTMANAGER,
        dedup_key=payload.group_key or _fingerprint(AmAlert(status="firing", labels=labels)),
        description=payload.common_annotations.get("description", ""),
        severity=severity_from_labels(labels),
        details={
            "annotations": payload.common_annotations,
            "group_labels": payload.group_labels,
            "alerts_firing": firing,
            "alerts": len(payload.alerts) + payload.truncated_alerts,
            "receiver": payload.receiver,
        },
        links=_links(
            *((a.generator_url, "Source") for a in payload.alerts[:5]),
            (payload.external_url, "Alertmanager"),
        ),
        occurred_at=min(starts) if starts else None,
        drill=ingest.is_drill(labels.get(ingest.DRILL_LABEL)),
    )


async def _fire(ctx: ApiContext, alert: Alert) -> AmOutcome:
    key = await ingest.enqueue(ctx, alert)
    return AmOutcome(dedup_key=key, status="firing", action="accepted")


async def _clear(ctx: ApiContext, service: Service, key: str, at: datetime | None) -> AmOutcome:
    cleared = await ctx.temporal_call(
        ctx.client().clear(service.name, key, AlertClear(actor=ALERTMANAGER, at=at))
    )
    return AmOutcome(
        dedup_key=key, status="resolved", action="cleared" if cleared else "no_open_incident"
    )


@router.post(
    "/alertmanager/{integration_key}",
    status_code=202,
    response_model=AmResult,
    responses=ERROR_RESPONSES,
    summary="Prometheus Alertmanager webhook (v4)",
)
async def alertmanager_webhook(
    payload: AmWebhook,
    request: Request,
    integration_key: Annotated[str, PathParam(min_length=1, max_length=256)],
    ctx: Annotated[ApiContext, Depends(get_context)],
    group: Annotated[bool, Query(description="one incident per alert group")] = False,
) -> AmResult:
    service = integration_service(ctx, integration_key)
    if service is None:
        raise ApiError(401, "unknown integration key", code="unauthorized")
    await verify_inbound_signature(request, service)
    if group:
        alert = group_alert_from(service, payload, ctx.policy)
        assert alert.dedup_key is not None
        if payload.status == "firing":
            outcome = await _fire(ctx, alert)
        else:
            outcome = await _clear(ctx, service, alert.dedup_key, None)
        return AmResult(results=[outcome])

    gate = asyncio.Semaphore(CONCURRENCY)

    async def handle(item: AmAlert) -> AmOutcome:
        async with gate:
            if item.status == "firing":
                return await _fire(ctx, alert_from(service, payload, item, ctx.policy))
            return await _clear(ctx, service, _fingerprint(item), item.ends_at)

    outcomes = await asyncio.gather(*(handle(a) for a in payload.alerts))
    return AmResult(results=list(outcomes))
