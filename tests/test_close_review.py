"""Closing honours the policy: ``close`` on a review-required incident hands it over to its
post-incident review at once (the review closes it when completed or waived); an incident
whose severity needs no review closes directly. Real Temporal, PostgreSQL and aiosmtpd.

The reopen window is an hour here, so the only way the review can start is the ``close``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from schemas.actions import CloseInput, ReopenInput
from schemas.enums import Action, Category, EventKind, Impact, Priority, Severity, Status, Urgency
from schemas.incident import EscalationState, IncidentSnapshot
from schemas.lifecycle import handed_over, review_pending_message
from schemas.review import CompleteReviewInput, ReviewStatus, review_workflow_id
from starter.dashboard.forms import forms_for
from starter.errors import ActionRejected
from tests.conftest import wait_for
from tests.support_api import api_stack
from tests.support_incidents import record_history
from tests.support_receivers import SmtpServer, smtp_server_fixture  # noqa: F401
from tests.support_reviews import ReviewStack, resolved_incident, review_policy, review_stack

HOUR = 3600.0
INCIDENTS = "/api/v1/incidents"


async def run_status(temporal: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    description = await temporal.get_workflow_handle(workflow_id).describe()
    return description.status


async def incident_run_completed(rs: ReviewStack, number: str) -> None:
    snapshot = await rs.client.get(number)

    async def completed() -> bool:
        status = await run_status(rs.st.temporal, snapshot.workflow_id)
        return status == WorkflowExecutionStatus.COMPLETED

    await wait_for(completed, message=f"the run of {number} completed")


async def test_close_of_a_sev1_starts_its_review_at_once(
    temporal_client: Client, database_url: str, task_queue: str, smtp_server: SmtpServer
) -> None:
    policy = review_policy(review_required=("SEV1",), reopen_window=HOUR)
    async with review_stack(
        temporal_client, database_url, task_queue, policy, smtp_server.port
    ) as rs:
        number = await resolved_incident(rs, "close-review-sev1")
        review_id = review_workflow_id(number)

        closed = await rs.client.act(
            number, Action.CLOSE, CloseInput(actor="bob", reason="fixed for good")
        )
        # handed over, not closed: the review decides when the incident closes
        assert closed.status == Status.RESOLVED and closed.closed_at is None
        assert closed.review_workflow_id == review_id
        timeline = (await rs.client.get(number)).timeline
        handover = timeline[-1]
        assert (handover.kind, handover.actor) == (EventKind.REVIEW_SCHEDULED, "bob")
        assert handover.details == {"workflow_id": review_id, "reason": "fixed for good"}
        assert EventKind.CLOSED not in {e.kind for e in timeline}

        await rs.wait_review_status(number, ReviewStatus.SCHEDULED)
        assert await run_status(temporal_client, review_id) == WorkflowExecutionStatus.RUNNING
        review = await rs.reviews.get(number)
        assert review.facilitator == "alice" and set(review.attendees) == {"alice", "bob", "carol"}
        await incident_run_completed(rs, number)

        # exactly one hand-over (by the close) and one meeting; the review either completes
        # the hand-over event with the meeting or adds its own, never a second hand-over
        scheduled = await rs.events(number, EventKind.REVIEW_SCHEDULED.value)
        handovers = [e for e in scheduled if e["actor"] == "bob"]
        meetings = [e for e in scheduled if "start" in e["details"]]
        assert len(handovers) == 1 and len(meetings) == 1, scheduled
        assert handovers[0]["details"]["workflow_id"] == review_id
        assert handovers[0]["details"]["reason"] == "fixed for good"
        assert len(scheduled) == len({e["seq"] for e in handovers + meetings})
        (ticket,) = await rs.rows("SELECT status FROM incidents WHERE number = %s", number)
        assert ticket["status"] == "resolved"

        # a second close, or a reopen, names the way out instead of pretending to be allowed
        for action, data in (
            (Action.CLOSE, CloseInput(actor="bob")),
            (Action.REOPEN, ReopenInput(actor="bob")),
        ):
            with pytest.raises(ActionRejected) as rejected:
                await rs.client.act(number, action, data)
            message = str(rejected.value)
            assert f"handed over to its post-incident review ({review_id})" in message
            assert "completed or waived" in message
        assert len(await rs.events(number, EventKind.REVIEW_SCHEDULED.value)) == len(scheduled)

        # completing the review closes the incident
        await rs.reviews.complete(number, CompleteReviewInput(actor="alice", summary="done"))
        await rs.wait_review_status(number, ReviewStatus.COMPLETED)
        (ticket,) = await rs.rows(
            "SELECT status, closed_at FROM incidents WHERE number = %s", number
        )
        assert ticket["status"] == "closed" and ticket["closed_at"] is not None
        await record_history(rs.st, number, "close_starts_review")


async def test_close_of_an_incident_needing_no_review_closes_it(
    temporal_client: Client, database_url: str, task_queue: str, smtp_server: SmtpServer
) -> None:
    policy = review_policy(review_required=("SEV1",), reopen_window=HOUR)
    async with review_stack(
        temporal_client, database_url, task_queue, policy, smtp_server.port
    ) as rs:
        number = await resolved_incident(rs, "close-review-sev3", severity=Severity.SEV3)
        closed = await rs.client.act(number, Action.CLOSE, CloseInput(actor="bob"))
        assert closed.status == Status.CLOSED and closed.closed_at is not None
        assert closed.review_workflow_id is None
        kinds = [e.kind for e in (await rs.client.get(number)).timeline]
        assert kinds[-1] == EventKind.CLOSED and EventKind.REVIEW_SCHEDULED not in kinds
        await incident_run_completed(rs, number)

        async def ticket_closed() -> dict[str, Any] | None:
            rows = await rs.rows("SELECT status FROM incidents WHERE number = %s", number)
            return rows[0] if rows and rows[0]["status"] == "closed" else None

        await wait_for(ticket_closed, message=f"{number} closed in the ticket store")
        assert await rs.events(number, EventKind.REVIEW_SCHEDULED.value) == []
        with pytest.raises(RPCError) as missing:
            await run_status(temporal_client, review_workflow_id(number))
        assert missing.value.status == RPCStatusCode.NOT_FOUND
        assert await rs.review_row(number) is None


async def test_close_through_the_api_answers_with_the_hand_over_then_409(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with api_stack(
        temporal_client, database_url, task_queue, review_required=True, reopen_window=HOUR
    ) as api:
        created = await api.http.post(
            INCIDENTS,
            json={"title": "Payments down", "service": api.names.service, "severity": "SEV2"},
            headers=api.auth("ingest"),
        )
        assert created.status_code == 201, created.text
        number = created.json()["number"]
        for action in ("acknowledge", "resolve"):
            done = await api.http.post(
                f"{INCIDENTS}/{number}/{action}", json=None, headers=api.auth("responder")
            )
            assert done.status_code == 200, done.text

        closed = await api.http.post(
            f"{INCIDENTS}/{number}/close", json={"reason": "ok"}, headers=api.auth("responder")
        )
        assert closed.status_code == 200, closed.text
        body = closed.json()
        assert body["status"] == "resolved" and body["closed_at"] is None
        assert body["review_workflow_id"] == review_workflow_id(number)

        again = await api.http.post(
            f"{INCIDENTS}/{number}/close", json=None, headers=api.auth("responder")
        )
        assert again.status_code == 409, again.text
        assert again.json()["error"] == "action_rejected"
        message = again.json()["message"]
        assert f"{number} is resolved and handed over to its post-incident review" in message
        assert "completed or waived" in message


def test_handed_over_is_resolved_with_a_review() -> None:
    assert handed_over(Status.RESOLVED, "review:INC-7")
    assert not handed_over(Status.RESOLVED, None)
    assert not handed_over(Status.CLOSED, "review:INC-7")  # the review closed it
    message = review_pending_message("INC-7", Action.ADD_NOTE, "review:INC-7")
    assert message == (
        "INC-7 is resolved and handed over to its post-incident review (review:INC-7): "
        "cannot add_note; it closes when the review is completed or waived"
    )


def test_dashboard_offers_no_action_once_handed_over() -> None:
    policy = review_policy(review_required=("SEV1",))
    snapshot = IncidentSnapshot(
        number="INC-7",
        title="Checkout 500s",
        service="checkout",
        status=Status.RESOLVED,
        severity=Severity.SEV1,
        priority=Priority.P1,
        impact=Impact.HIGH,
        urgency=Urgency.HIGH,
        category=Category.SOFTWARE,
        created_at=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        escalation=EscalationState(policy=policy.escalation_policies[0]),
    )
    resolved = {f.action for f in forms_for(snapshot, policy)}
    assert resolved == {Action.CLOSE, Action.REOPEN, Action.ASSIGN, Action.ADD_NOTE, Action.LINK}
    handed = snapshot.model_copy(update={"review_workflow_id": "review:INC-7"})
    assert forms_for(handed, policy) == []
