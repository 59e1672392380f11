"""Realistic incidents, events and policies for the notification tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.enums import EventKind
from schemas.incident import (
    Breach,
    Deadlines,
    EscalationState,
    IncidentSnapshot,
    Link,
    TimelineEvent,
)
from schemas.policy import EscalationPolicy, EscalationTarget, Policy

T0 = datetime(2026, 3, 2, 14, 3, tzinfo=UTC)
BASE_URL = "https://incidents.example.com"

#: the event kinds the issue asks a dedicated template for
NOTIFYING_KINDS = [
    EventKind.TRIGGERED,
    EventKind.ESCALATED,
    EventKind.SLA_BREACHED,
    EventKind.ACKNOWLEDGED,
    EventKind.STATUS_UPDATE_DUE,
    EventKind.SEVERITY_CHANGED,
    EventKind.MITIGATED,
    EventKind.RESOLVED,
    EventKind.REOPENED,
    EventKind.ESCALATION_EXHAUSTED,
    EventKind.REVIEW_SCHEDULED,
    EventKind.REVIEW_REMINDER,
    EventKind.REVIEW_OVERDUE,
    EventKind.STATUS_UPDATE_POSTED,
    EventKind.ASSIGNED,
]

#: details as the workflow records them, per kind (kinds absent here get none)
DETAILS: dict[EventKind, dict[str, Any]] = {
    EventKind.TRIGGERED: {"alert_id": "am-5512", "source": "alertmanager"},
    EventKind.ESCALATED: {"level": 2, "targets": ["user:bob", "schedule:primary"]},
    EventKind.SLA_BREACHED: {
        "clock": "ack",
        "deadline": (T0 + timedelta(minutes=5)).isoformat(),
        "late_by_seconds": 95.0,
    },
    EventKind.ACKNOWLEDGED: {"note": "looking at the payment gateway"},
    EventKind.SEVERITY_CHANGED: {"from": "SEV2", "to": "SEV1", "reason": "all regions affected"},
    EventKind.MITIGATED: {"note": "rolled back release 2026.03.02-1"},
    EventKind.RESOLVED: {"resolution": "gateway timeout raised back to 5s"},
    EventKind.REOPENED: {"reason": "errors are back"},
    EventKind.ESCALATION_EXHAUSTED: {"level": 3},
    EventKind.REVIEW_SCHEDULED: {
        "start": (T0 + timedelta(days=5)).isoformat(),
        "facilitator": "carol",
        "attendees": ["alice", "bob"],
    },
    EventKind.REVIEW_REMINDER: {"start": (T0 + timedelta(days=5)).isoformat()},
    EventKind.REVIEW_OVERDUE: {"due": (T0 + timedelta(days=7)).isoformat(), "owner": "carol"},
    EventKind.NOTE_ADDED: {"text": "customer support informed"},
    EventKind.STATUS_UPDATE_POSTED: {
        "text": "Payments fail for some customers; a fix is rolling out.",
        "public": True,
        "phase": "identified",
    },
    EventKind.ASSIGNED: {"role": "commander", "user": "carol", "previous": "bob"},
}


def new_number() -> str:
    """A number no other test uses: keys live in one database for the whole session."""
    return f"INC-{uuid.uuid4().int % 10**9}"


def escalation_policy() -> EscalationPolicy:
    return EscalationPolicy(
        name="checkout-oncall",
        levels=[
            {"targets": ["schedule:primary"], "delay": "5m"},
            {"targets": ["user:bob"], "delay": "10m"},
        ],
    )


def make_snapshot(
    *, number: str | None = None, title: str = "Checkout returns 500s", severity: str = "SEV1"
) -> IncidentSnapshot:
    """An incident a few minutes in: acknowledged, a commander, a breach, a link."""
    return IncidentSnapshot.model_validate(
        {
            "number": number or new_number(),
            "workflow_id": "incident-checkout-5xx",
            "title": title,
            "description": "Error rate on /api/checkout above 20% for 5 minutes.",
            "service": "checkout",
            "status": "acknowledged",
            "severity": severity,
            "priority": "P1",
            "impact": "high",
            "urgency": "high",
            "category": "software",
            "labels": {"region": "eu-west-1", "team": "payments"},
            "links": [Link(href="https://grafana.example.com/d/checkout", text="Dashboard")],
            "created_at": T0,
            "acknowledged_at": T0 + timedelta(minutes=2),
            "last_status_update_at": T0 + timedelta(minutes=10),
            "reopen_count": 2,
            "responders": {"commander": "alice", "assignee": "bob"},
            "participants": ["alice", "bob"],
            "deadlines": Deadlines(mitigate=T0 + timedelta(minutes=30)),
            "breaches": [
                Breach(
                    clock="ack",
                    deadline=T0 + timedelta(minutes=5),
                    at=T0 + timedelta(minutes=6),
                    late_by_seconds=60,
                )
            ],
            "escalation": EscalationState(policy=escalation_policy(), level=2, max_level=2),
            "last_seq": 7,
        }
    )


def make_event(
    kind: EventKind, *, seq: int = 7, details: dict[str, Any] | None = None
) -> TimelineEvent:
    return TimelineEvent(
        seq=seq,
        at=T0 + timedelta(minutes=seq),
        actor="monitoring" if kind == EventKind.TRIGGERED else "alice",
        kind=kind,
        details=DETAILS.get(kind, {}) if details is None else details,
    )


def targets(*names: str) -> list[EscalationTarget]:
    return [EscalationTarget.model_validate(n) for n in names]


def make_policy(
    *,
    users: list[dict[str, Any]] | None = None,
    channels: list[dict[str, Any]] | None = None,
    schedules: list[dict[str, Any]] | None = None,
) -> Policy:
    """A valid policy around the given users, channels and schedules."""
    sev = {"ack_within": "5m", "mitigate_within": "30m", "resolve_within": "4h"}
    users = users or [{"name": "alice"}]
    return Policy.model_validate(
        {
            "base_url": "http://policy-base.invalid",
            "users": users,
            "channels": channels or [],
            "schedules": schedules or [],
            "escalation_policies": [
                {"name": "default", "levels": [{"targets": [f"user:{users[0]['name']}"]}]}
            ],
            "severities": {s: sev for s in ("SEV1", "SEV2", "SEV3", "SEV4")},
            "services": [{"name": "checkout", "escalation_policy": "default"}],
        }
    )
