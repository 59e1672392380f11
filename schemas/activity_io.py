"""Activity names and their input/output models: the contract between ``workflows/`` and
``activities/``. Workflows call activities by these names, so workflow code never imports
the modules that do I/O."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.incident import IncidentSnapshot, TimelineEvent
from schemas.policy import EscalationTarget

ALLOCATE_INCIDENT_NUMBER = "allocate_incident_number"
RECORD_INCIDENT = "record_incident"
NOTIFY = "notify"


class AllocateNumberInput(BaseModel):
    workflow_id: str
    run_id: str = ""


class RecordIncidentInput(BaseModel):
    """Upsert the ticket row and insert the events (if absent) in one transaction."""

    snapshot: IncidentSnapshot
    events: list[TimelineEvent] = Field(default_factory=list)


class NotifyInput(BaseModel):
    """Tell ``targets`` about ``event``; the notification key is (number, event.seq, target)."""

    incident: IncidentSnapshot
    event: TimelineEvent
    targets: list[EscalationTarget]


class FailedDelivery(BaseModel):
    target: str
    recipient: str
    channel: str
    reason: str


class NotifyResult(BaseModel):
    delivered: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)
    failed: list[FailedDelivery] = Field(default_factory=list)
    #: users the targets resolved to (schedules resolved at the event's time)
    recipients: list[str] = Field(default_factory=list)
