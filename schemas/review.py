"""The post-incident review's vocabulary: the workflow's input, its Updates, its state, and
the activities it calls (names and input/output models, like ``schemas.activity_io``).

The review workflow never sees the policy file. What it needs travels in
:class:`ReviewStart`: the incident snapshot (numbers continue its timeline), the severity's
``review_after`` and the policy's ``review`` section as it was when the incident started.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.incident import IncidentSnapshot
from schemas.policy import ReviewPolicy

RECORD_REVIEW = "record_review"
SEND_REVIEW_INVITE = "send_review_invite"
RECORD_ACTION_ITEMS = "record_action_items"
OPEN_ACTION_ITEMS_DUE = "open_action_items_due"
STORE_ACTION_ITEMS = "store_action_items"
UPDATE_ACTION_ITEM = "update_action_item"
COMPLETE_HAND_OVER = "complete_hand_over"

#: ``workflow.patched`` ids of the review workflow's changed command sequences
PATCH_TRACKED_ACTION_ITEMS = "tracked-action-items"
PATCH_WAIVE_CANCELS_INVITE = "waive-cancels-invite"
PATCH_SCHEDULED_ONCE = "review-scheduled-once"


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


class ActionItemStatus(StrEnum):
    """Mirrors the ``action_items.status`` column."""

    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


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
    """One action item. Its due instant (when the owner is reminded and it counts as
    overdue) is ``due_at`` if given, else 09:00 of ``due_date`` in the review's zone."""

    model_config = ConfigDict(extra="forbid")

    owner: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=1000)
    due_date: date | None = None
    due_at: AwareDatetime | None = None


class CompleteReviewInput(ReviewAction):
    summary: str = Field(min_length=1, max_length=65536)
    contributing_factors: list[str] = Field(default_factory=list)
    what_went_well: list[str] = Field(default_factory=list)
    what_to_improve: list[str] = Field(default_factory=list)
    action_items: list[ActionItemInput] = Field(default_factory=list)


class AddAttendeesInput(ReviewAction):
    #: user names; the ones already invited are ignored
    people: list[str] = Field(min_length=1, max_length=100)


class AddActionItemInput(ReviewAction):
    item: ActionItemInput


class ActionItemChange(ReviewAction):
    """Change one action item: any of status, owner and due (``clear_due`` drops the due
    date). Done or cancelled stops its reminder; an item must be open to change owner/due."""

    id: int = Field(ge=1)
    status: ActionItemStatus | None = None
    owner: str | None = Field(default=None, min_length=1, max_length=200)
    due_date: date | None = None
    due_at: AwareDatetime | None = None
    clear_due: bool = False

    def changes_plan(self) -> bool:
        """Whether it changes the owner or the due instant (not only the status)."""
        return (
            self.owner is not None
            or self.due_date is not None
            or self.due_at is not None
            or self.clear_due
        )


class WaiveInput(ReviewAction):
    """Skip the review. Only admins may: the workflow cannot see token scopes, so the
    caller (the HTTP API, after checking the ``admin`` scope) vouches with ``admin=True``."""

    reason: str = Field(min_length=1, max_length=4000)
    admin: bool = False


# -- state --------------------------------------------------------------------------------


class ActionItem(BaseModel):
    """One ``action_items`` row."""

    id: int
    number: str
    service: str | None = None
    owner: str
    title: str
    due_date: date | None = None
    #: when it is due: its reminder goes out then, and after it an open item is overdue
    due_at: datetime | None = None
    status: str = "open"
    created_at: datetime | None = None
    updated_at: datetime | None = None
    closed_at: datetime | None = None
    updated_by: str | None = None


def action_item_problem(item: ActionItem, change: ActionItemChange) -> str | None:
    """Why ``change`` is not allowed on ``item`` now (a 409), or ``None``."""
    reopened = change.status == ActionItemStatus.OPEN
    if item.status != ActionItemStatus.OPEN and not reopened and change.changes_plan():
        return (
            f"action item {item.id} is {item.status}: reopen it (status open) to change "
            "its owner or due date"
        )
    return None


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
    #: due dates whose action-item reminder has not gone out yet (reviews completed before
    #: action items were tracked in state; see ``action_items``)
    action_item_reminders: list[date] = Field(default_factory=list)
    #: the action items this workflow tracks, as last stored; kept up to date by the
    #: ``update_action_item`` Update, so a done or cancelled item is never reminded
    action_items: list[ActionItem] = Field(default_factory=list)
    #: item id -> the due instant whose reminder went out
    action_items_reminded: dict[int, datetime] = Field(default_factory=dict)


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
    #: REQUEST (invite, update) or CANCEL (the review was waived)
    method: Literal["REQUEST", "CANCEL"] = "REQUEST"
    #: who gets this mail (``None``: facilitator and attendees); the .ics lists everyone
    recipients: list[str] | None = None
    #: the timeline event kind the deliveries are logged under in ``notifications``
    kind: str = "review_scheduled"


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


class HandOverInput(BaseModel):
    """``complete_hand_over``: add the first meeting's details to the incident's
    ``review_scheduled`` event ``seq`` (its hand-over), so the timeline holds one such event
    per schedule instead of the hand-over plus the meeting."""

    number: str
    seq: int
    details: dict[str, Any]


class UpdateActionItemInput(BaseModel):
    """``update_action_item``: the change, with the due instant already resolved."""

    number: str
    change: ActionItemChange


class OpenActionItemsInput(BaseModel):
    number: str
    due_date: date


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
