"""PostIncidentReviewWorkflow: the learning half of an incident, started as an abandoned child
so the incident's own run can complete and free its workflow ID for the next alert.

This first version records the review as pending and waits for ``complete_review``, which
closes the incident (ticket row and timeline continue the incident's sequence numbers).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from schemas.activity_io import RECORD_INCIDENT, RecordIncidentInput
    from schemas.enums import EventKind, Status
    from schemas.incident import IncidentSnapshot, TimelineEvent


class ReviewStart(BaseModel):
    incident: IncidentSnapshot
    review_after: int = 5


class CompleteReviewInput(BaseModel):
    actor: str = Field(min_length=1)
    summary: str = ""


class ReviewState(BaseModel):
    number: str
    status: str
    incident: IncidentSnapshot


@workflow.defn
class PostIncidentReviewWorkflow:
    @workflow.init
    def __init__(self, start: ReviewStart) -> None:
        self.incident = start.incident
        self.status = "pending"

    @workflow.run
    async def run(self, start: ReviewStart) -> ReviewState:
        await workflow.wait_condition(lambda: self.status == "completed")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    @workflow.query
    def state(self) -> ReviewState:
        return ReviewState(number=self.incident.number, status=self.status, incident=self.incident)

    @workflow.update
    async def complete_review(self, done: CompleteReviewInput) -> ReviewState:
        now = workflow.now()
        inc = self.incident
        events = []
        for kind, details in (
            (EventKind.REVIEW_COMPLETED, {"summary": done.summary}),
            (EventKind.CLOSED, {"reason": "review completed"}),
        ):
            inc.last_seq += 1
            events.append(
                TimelineEvent(
                    seq=inc.last_seq, at=now, actor=done.actor, kind=kind, details=details
                )
            )
        inc.status = Status.CLOSED
        inc.closed_at = now
        await workflow.execute_activity(
            RECORD_INCIDENT,
            RecordIncidentInput(snapshot=inc, events=events),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        )
        self.status = "completed"
        return self.state()

    @complete_review.validator
    def _v_complete_review(self, done: CompleteReviewInput) -> None:
        if self.status == "completed":
            raise ValueError(f"the review of {self.incident.number} is already completed")
