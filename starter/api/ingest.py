"""Turning what a monitoring system sent into a classified :class:`Alert`, and triggering it.

Shared by the native create route and both integrations, so every way in classifies alike:
a value the sender gave explicitly wins, then the policy's classification rules over the
labels fill what is missing, then the defaults (impact and urgency medium, category other;
severity derived from the ITIL priority by the workflow).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.actors import Actor
from schemas.classification import priority_for, severity_for
from schemas.classify import classify
from schemas.enums import Category, Impact, Severity, Urgency
from schemas.incident import Alert, IncidentRef, Link
from schemas.policy import Policy
from starter.api.context import ApiContext

TITLE_MAX = 1024
#: the Alertmanager label that marks an alert a drill (``incidentflow_drill="true"``)
DRILL_LABEL = "incidentflow_drill"


def is_drill(value: Any) -> bool:
    """A drill marker as senders write it: ``true`` (JSON) or ``"true"`` (a label)."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def build_alert(
    policy: Policy,
    *,
    title: str,
    service: str | None,
    labels: dict[str, str],
    source: str,
    actor: Actor,
    dedup_key: str | None = None,
    description: str = "",
    severity: Severity | None = None,
    impact: Impact | None = None,
    urgency: Urgency | None = None,
    category: Category | None = None,
    details: dict[str, Any] | None = None,
    links: list[Link] | None = None,
    occurred_at: datetime | None = None,
    drill: bool = False,
) -> Alert:
    """An :class:`Alert` classified by the policy's rules; ``service`` may come from a rule.

    Raises ``ValueError`` when neither the sender nor a rule names a service.
    """
    rules = classify(labels, list(policy.classification))
    service = service or rules.service
    if not service:
        raise ValueError("no service given and no classification rule names one")
    return Alert(
        service=service,
        title=(title.strip() or "untitled alert")[:TITLE_MAX],
        description=description,
        dedup_key=dedup_key,
        source=source,
        severity=severity or rules.severity,
        impact=impact or rules.impact or Impact.MEDIUM,
        urgency=urgency or rules.urgency or Urgency.MEDIUM,
        category=category or rules.category or Category.OTHER,
        labels=labels,
        details=details or {},
        links=links or [],
        actor=actor,
        occurred_at=occurred_at,
        drill=drill,
    )


def effective_severity(alert: Alert) -> Severity:
    return alert.severity or severity_for(priority_for(alert.impact, alert.urgency))


async def enqueue(ctx: ApiContext, alert: Alert) -> str:
    """The fast path: answer once Temporal durably holds the alert (signal-with-start), not
    once its number, ticket and pages exist; returns the dedup key (generated if absent)."""
    key = await ctx.temporal_call(ctx.client().enqueue(alert))
    ctx.metrics.alerts_accepted.labels(effective_severity(alert).value, alert.source).inc()
    return key


async def trigger(ctx: ApiContext, alert: Alert) -> IncidentRef:
    """Open (or count against the open) incident, and count opened incidents for /metrics."""
    ref = await ctx.temporal_call(ctx.client().trigger(alert))
    if ref.created:
        ctx.metrics.incidents_opened.labels(effective_severity(alert).value, alert.source).inc()
    return ref
