"""The post-incident review's vocabulary: the workflow's input, its Updates, its state, and
the activities it calls (names and input/output models, like ``schemas.activity_io``).

The review workflow never sees the policy file. What it needs travels in
:class:`ReviewStart`: the incident snapshot (numbers continue its timeline), the severity's
``review_after`` and the policy's ``review`` section as it was when the incident started.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.incident import IncidentSnapshot
from schemas.policy import ReviewPolicy

RECORD_REVIEW = "record_review"
SEND_REVIEW_INVITE = "send_review_invite"
RECORD_ACTION_ITEMS = "record_action_items"
OPEN_ACTION_ITEMS_DUE = "open_action_items_due"


def review_workflow_id(number: str) -> str:
    """The review workflow of incident ``number`` (one per incident)."""
    return f"review:{number}"


class ReviewStatus(StrEnum):
    """Mirrors the ``reviews.status`` column."""

    PENDING = "pending"
    SCHEDULED = "scheduled"
    OVERDUE = "overdue"
    COMPLETED = "completed"
    WAIVED = "waived"


DONE = (ReviewStatus.COMPLETED, ReviewStatus.WAIVED)


class ReviewStart(BaseModel):
    """Input of ``PostIncidentReviewWorkflow.run``."""

    incident: IncidentSnapshot
    #: business days after resolution
    review_after: int = 5
    #: the policy's review section; ``None`` (an incident started before reviews were
    #: configured) means the defaults of :class:`ReviewPolicy`
    review: ReviewPolicy | None = None


# -- Updates ------------------------------------------------------------------------------


class ReviewAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: str = Field(min_length=1, max_length=200)


class RescheduleInput(ReviewAction):
    #: the new meeting start; needs a UTC offset
    at: datetime
    reason: str | None = Field(default=None, max_length=4000)


class ActionItemInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=1000)
    due_date: date | None = None


class CompleteReviewInput(ReviewAction):
    summary: str = Field(min_length=1, max_length=65536)
    contributing_factors: list[str] = Field(default_factory=list)
    what_went_well: list[str] = Field(default_factory=list)
    what_to_improve: list[str] = Field(default_factory=list)
    action_items: list[ActionItemInput] = Field(default_factory=list)


class WaiveInput(ReviewAction):
    """Skip the review. Only admins may: the workflow cannot see token scopes, so the
    caller (the HTTP API, after checking the ``admin`` scope) vouches with ``admin=True``."""

    reason: str = Field(min_length=1, max_length=4000)
    admin: bool = False


# -- state --------------------------------------------------------------------------------


class ReviewCompletion(BaseModel):
    completed_by: str
    completed_at: datetime
    summary: str
    contributing_factors: list[str] = Field(default_factory=list)
    what_went_well: list[str] = Field(default_factory=list)
    what_to_improve: list[str] = Field(default_factory=list)
    action_items: list[ActionItemInput] = Field(default_factory=list)


class ReviewState(BaseModel):
    """What the ``state`` query returns."""

    number: str
    workflow_id: str = ""
    status: ReviewStatus
    incident: IncidentSnapshot
    facilitator: str | None = None
    attendees: list[str] = Field(default_factory=list)
    owner: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    zone: str = "UTC"
    #: iCalendar SEQUENCE of the last invite: 0, then +1 per reschedule
    sequence: int = 0
    reminders_pending: list[datetime] = Field(default_factory=list)
    overdue_at: datetime | None = None
    completion: ReviewCompletion | None = None
    waived_by: str | None = None
    waived_reason: str | None = None
    #: due dates whose action-item reminder has not gone out yet
    action_item_reminders: list[date] = Field(default_factory=list)


# -- activities ---------------------------------------------------------------------------


class RecordReviewInput(BaseModel):
    """Render the postmortem and upsert the ``reviews`` row.

    The timeline comes from ``incident_events`` (the system of record), once every event up
    to ``through_seq`` is there: the incident's last ticket write may still be in flight
    when its review starts.
    """

    review: ReviewState
    through_seq: int


class ReviewInviteInput(BaseModel):
    """Send the calendar invite for one (re)schedule; ``seq`` is the timeline event that
    (re)scheduled it and keys each delivery, as for notifications."""

    number: str
    seq: int
    title: str
    service: str
    severity: str
    start: datetime
    end: datetime
    zone: str
    facilitator: str | None = None
    attendees: list[str] = Field(default_factory=list)
    sequence: int = 0
    #: DTSTAMP: when this version of the invite was made (the event's time)
    stamp: datetime


class InviteResult(BaseModel):
    delivered: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)
    #: users with no email address: the workflow notifies them through ``notify`` instead
    without_email: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)


class RecordActionItemsInput(BaseModel):
    number: str
    service: str
    items: list[ActionItemInput]


class OpenActionItemsInput(BaseModel):
    number: str
    due_date: date


class ActionItem(BaseModel):
    """One ``action_items`` row."""

    id: int
    number: str
    service: str | None = None
    owner: str
    title: str
    due_date: date | None = None
    status: str = "open"
    created_at: datetime | None = None


class ReviewRecord(BaseModel):
    """One ``reviews`` row: the stored postmortem and the review's last recorded state."""

    number: str
    workflow_id: str | None = None
    status: ReviewStatus
    facilitator: str | None = None
    attendees: list[str] = Field(default_factory=list)
    scheduled_at: datetime | None = None
    document: str | None = None
    summary: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None
