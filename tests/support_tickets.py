"""Realistic incidents and timelines for ticket-store tests (reusable by other areas)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.enums import (
    Category,
    Clock,
    EventKind,
    Impact,
    Priority,
    Role,
    Severity,
    Status,
    Urgency,
)
from schemas.incident import Breach, Deadlines, EscalationState, IncidentSnapshot, TimelineEvent
from schemas.policy import EscalationLevel, EscalationPolicy, EscalationTarget

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def escalation_policy() -> EscalationPolicy:
    return EscalationPolicy(
        name="checkout-primary",
        levels=[
            EscalationLevel(
                targets=[EscalationTarget.model_validate("user:alice")],
                delay=timedelta(minutes=5),
            )
        ],
    )


def make_events(count: int, *, start: int = 1, at: datetime = T0) -> list[TimelineEvent]:
    """``count`` events from seq ``start``: a trigger, then repeats and notes."""
    events = []
    for seq in range(start, start + count):
        details: dict[str, Any]
        if seq == 1:
            kind, actor, details = EventKind.TRIGGERED, "alertmanager", {"alert_id": "a-1"}
        elif seq % 2 == 0:
            kind, actor, details = EventKind.ALERT_REPEATED, "alertmanager", {"count": seq}
        else:
            kind, actor, details = EventKind.NOTE_ADDED, "alice", {"text": f"note {seq}"}
        events.append(
            TimelineEvent(
                seq=seq, at=at + timedelta(seconds=seq), actor=actor, kind=kind, details=details
            )
        )
    return events


def make_snapshot(
    number: str,
    *,
    last_seq: int = 1,
    status: Status = Status.TRIGGERED,
    workflow_id: str | None = None,
    run_id: str = "run-1",
    **changes: Any,
) -> IncidentSnapshot:
    """A SEV2 checkout incident with a commander, a breach and labels; ``changes`` override."""
    acknowledged = status != Status.TRIGGERED
    snapshot = IncidentSnapshot(
        number=number,
        workflow_id=workflow_id or f"incident-checkout-{number}",
        run_id=run_id,
        title="Checkout error rate above 5%",
        description="5xx ratio on /api/checkout is 7.2% over 5 minutes.",
        service="checkout",
        status=status,
        severity=Severity.SEV2,
        priority=Priority.P2,
        impact=Impact.HIGH,
        urgency=Urgency.MEDIUM,
        category=Category.SOFTWARE,
        labels={"alertname": "CheckoutErrorRate", "env": "prod", "team": "payments"},
        details={"ratio": 0.072, "threshold": 0.05},
        dedup_key=f"checkout-errors-{number}",
        source="alertmanager",
        alert_count=max(1, last_seq // 2),
        created_at=T0,
        acknowledged_at=T0 + timedelta(minutes=7) if acknowledged else None,
        responders={Role.COMMANDER: "alice"} if acknowledged else {},
        participants=["alice"] if acknowledged else [],
        deadlines=Deadlines(
            ack=None if acknowledged else T0 + timedelta(minutes=5),
            mitigate=T0 + timedelta(hours=1),
            resolve=T0 + timedelta(hours=4),
        ),
        breaches=[
            Breach(
                clock=Clock.ACK,
                deadline=T0 + timedelta(minutes=5),
                at=T0 + timedelta(minutes=5, seconds=1),
                late_by_seconds=1.0,
            )
        ]
        if acknowledged
        else [],
        escalation=EscalationState(
            policy=escalation_policy(),
            level=1,
            max_level=1,
            active=not acknowledged,
        ),
        timeline=make_events(last_seq),
        last_seq=last_seq,
    )
    return snapshot.model_copy(update=changes) if changes else snapshot
