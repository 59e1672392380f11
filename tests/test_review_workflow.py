"""PostIncidentReviewWorkflow end to end: real Temporal, PostgreSQL and an aiosmtpd server.

See tests/support_reviews.py for how the meeting's clocks are brought within seconds.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client

from schemas.calendars import business_days_between, holiday_dates, is_business_day
from schemas.durations import format_duration
from schemas.enums import Severity, Status
from schemas.review import (
    ActionItemChange,
    ActionItemInput,
    ActionItemStatus,
    CompleteReviewInput,
    ReviewStatus,
)
from schemas.review_calendar import review_uid
from schemas.review_schedule import review_start
from starter.errors import ActionRejected, IncidentNotFound, InvalidAction
from starter.reviews_client import NotAllowed, ReviewFinished
from tests.conftest import wait_for
from tests.support_receivers import SmtpServer, smtp_server_fixture  # noqa: F401
from tests.support_reviews import (
    Invite,
    ReviewStack,
    email_of,
    invites,
    record_review_history,
    resolved_incident,
    review_policy,
    review_stack,
)

BERLIN = ZoneInfo("Europe/Berlin")
PEOPLE = {"alice", "bob", "carol"}  # commander alice (facilitator), bob and carol acted


async def scheduled(rs: ReviewStack, smtp: SmtpServer, key: str) -> str:
    """A resolved SEV1 whose review is scheduled and whose first invites went out."""
    number = await resolved_incident(rs, key)
    await rs.wait_review_status(number, ReviewStatus.SCHEDULED)
    await wait_for(lambda: len(invites(smtp.sink.messages)) >= len(PEOPLE), message="first invites")
    return number


async def test_resolution_schedules_review_with_draft_and_invite(
    temporal_client: Client, database_url: str, task_queue: str, smtp_server: SmtpServer
) -> None:
    policy = review_policy(review_after=2, holidays=["2026-12-24", "2026-12-25"])
    async with review_stack(
        temporal_client, database_url, task_queue, policy, smtp_server.port
    ) as rs:
        number = await scheduled(rs, smtp_server, "review-e2e")
        incident = await rs.client.get(number)  # the incident run's final state
        assert incident.status == Status.RESOLVED and incident.resolved_at is not None
        assert incident.review_workflow_id == f"review:{number}"

        state = await rs.reviews.get(number)
        assert state.status == ReviewStatus.SCHEDULED
        assert state.facilitator == "alice" and set(state.attendees) == PEOPLE
        assert state.owner == "dave" and state.zone == "Europe/Berlin"
        # the meeting: review_after business days after the local resolution date, 14:00
        assert state.start is not None
        local = state.start.astimezone(BERLIN)
        holidays = holiday_dates(policy.review.holidays)
        resolved_day = incident.resolved_at.astimezone(BERLIN).date()
        assert (local.hour, local.minute) == (14, 0)
        assert is_business_day(local.date(), holidays)
        assert business_days_between(resolved_day, local.date(), holidays) == 2
        assert state.start == review_start(incident.resolved_at, 2, policy.review)

        row = await rs.review_row(number)
        assert row is not None
        assert row["scheduled_at"] == state.start and row["facilitator"] == "alice"
        assert row["workflow_id"] == f"review:{number}"
        document = await rs.reviews.postmortem(number)
        for e in incident.timeline:  # every event of the incident, with its time
            kind = e.kind.value.replace("_", " ")
            assert f"`{e.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC` #{e.seq} **{kind}**" in document
        assert incident.acknowledged_at and incident.mitigated_at
        tta = format_duration(incident.acknowledged_at - incident.created_at)
        ttr = format_duration(incident.resolved_at - incident.created_at)
        assert "| Time to acknowledge (TTA) | " in document and f" | {tta} |" in document
        assert f" | {ttr} |\n" in document
        assert "**review scheduled** by incidentflow" in document

        found = invites(smtp_server.sink.messages)
        assert {i.to for i in found} == {email_of(p) for p in PEOPLE}
        for invite in found:
            ev = invite.event
            assert str(invite.calendar["METHOD"]) == "REQUEST"
            assert str(ev["UID"]) == review_uid(number)
            assert invite.sequence == 0
            assert ev["DTSTART"].params["TZID"] == "Europe/Berlin"
            assert ev.decoded("DTSTART") == state.start
            assert ev.decoded("DTEND") == state.start + policy.review.duration
            assert str(ev["ORGANIZER"]) == f"mailto:{email_of('alice')}"
            assert invite.attendees == {f"mailto:{email_of(p)}" for p in PEOPLE}

        # the timeline continues the incident's numbers: the review's own scheduling event
        events = await rs.events(number)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        # one review_scheduled event: the incident's hand-over, completed with the meeting
        (scheduled_event,) = [e for e in events if e["kind"] == "review_scheduled"]
        assert scheduled_event["seq"] == incident.last_seq == events[-1]["seq"]
        details = scheduled_event["details"]
        assert details["start"] == state.start.isoformat() and details["sequence"] == 0
        assert details["workflow_id"] == f"review:{number}" and details["facilitator"] == "alice"
        # the invites are keyed by that event
        invited = await rs.notified(number, "review_scheduled")
        assert {r["seq"] for r in invited} == {scheduled_event["seq"]}
        assert {r["recipient"] for r in invited} == PEOPLE


async def test_reschedule_reminders_and_overdue(
    temporal_client: Client, database_url: str, task_queue: str, smtp_server: SmtpServer
) -> None:
    policy = review_policy(reminders=(3.0, 1.5), duration=1.0, overdue_after_business_days=0)
    async with review_stack(
        temporal_client, database_url, task_queue, policy, smtp_server.port
    ) as rs:
        number = await scheduled(rs, smtp_server, "review-clocks")
        first = await rs.reviews.get(number)
        assert first.sequence == 0 and first.start is not None
        assert first.reminders_pending == [
            first.start - timedelta(seconds=3),
            first.start - timedelta(seconds=1.5),
        ]

        with pytest.raises(InvalidAction, match="not in the future"):
            await rs.reviews.reschedule(number, datetime.now(UTC) - timedelta(minutes=1), "bob")
        with pytest.raises(InvalidAction, match="UTC offset"):
            await rs.reviews.reschedule(number, datetime.now() + timedelta(hours=1), "bob")

        at = (datetime.now(UTC) + timedelta(seconds=6)).replace(microsecond=0)
        state = await rs.reviews.reschedule(number, at, "bob", reason="sooner")
        assert state.sequence == 1 and state.start == at
        # both reminders are ahead unless the update took over 3 s to reach the workflow
        # (a loaded CI machine); a reminder already past when scheduling is dropped, by design
        expected = [at - timedelta(seconds=3), at - timedelta(seconds=1.5)]
        pending = state.reminders_pending
        assert pending and pending == expected[len(expected) - len(pending) :]

        # a second invite per person: same UID, higher SEQUENCE, the new time in the zone
        await wait_for(
            lambda: len(invites(smtp_server.sink.messages)) >= 2 * len(PEOPLE),
            message="updated invites",
        )
        updated = [i for i in invites(smtp_server.sink.messages) if i.sequence == 1]
        assert {i.to for i in updated} == {email_of(p) for p in PEOPLE}
        for invite in updated:
            assert str(invite.event["UID"]) == review_uid(number)
            assert invite.event.decoded("DTSTART") == at
            assert invite.event["DTSTART"].params["TZID"] == "Europe/Berlin"
            assert str(invite.message["Subject"]).startswith("Updated invitation")

        # two reminders before the meeting, then overdue once it has ended
        overdue_row = await rs.wait_review_status(number, ReviewStatus.OVERDUE, within=20)
        assert overdue_row["scheduled_at"] == at
        reminders = await rs.events(number, "review_reminder")
        assert len(reminders) == len(pending)
        for reminder, due in zip(reminders, pending, strict=True):
            assert reminder["at"] >= due  # durable timers never fire early
        (overdue,) = await rs.events(number, "review_overdue")
        assert overdue["at"] >= at + timedelta(seconds=1)
        assert overdue["details"]["owner"] == "dave"

        async def reminded() -> bool:
            rows = await rs.notified(number, "review_reminder")
            return len(rows) == len(pending) * len(PEOPLE) and all(
                r["status"] == "sent" for r in rows
            )

        await wait_for(reminded, message="reminders sent to facilitator and attendees")
        rows = await rs.notified(number, "review_reminder")
        assert {r["recipient"] for r in rows} == PEOPLE

        async def escalated() -> set[str]:
            rows = await rs.notified(number, "review_overdue")
            return {r["recipient"] for r in rows if r["status"] == "sent"}

        # the facilitator is told, and the policy's owner (dave) is the escalation
        async def escalated_to_both() -> bool:
            return await escalated() == {"alice", "dave"}

        await wait_for(escalated_to_both, message="overdue sent to alice and dave")

        # an overdue review can still be completed
        done = await rs.reviews.complete(
            number, CompleteReviewInput(actor="alice", summary="late but done")
        )
        assert done.status == ReviewStatus.COMPLETED
        await rs.wait_review_status(number, ReviewStatus.COMPLETED)
        await record_review_history(temporal_client, number, "review_rescheduled_overdue")


async def test_complete_closes_incident_and_tracks_action_items(
    temporal_client: Client, database_url: str, task_queue: str, smtp_server: SmtpServer
) -> None:
    policy = review_policy()
    async with review_stack(
        temporal_client, database_url, task_queue, policy, smtp_server.port
    ) as rs:
        number = await scheduled(rs, smtp_server, "review-complete")
        yesterday = datetime.now(BERLIN).date() - timedelta(days=1)
        later = yesterday + timedelta(days=31)
        items = [
            ActionItemInput(owner="bob", title="Alert on gateway latency", due_date=yesterday),
            ActionItemInput(owner="carol", title="Review config changes", due_date=later),
        ]
        with pytest.raises(InvalidAction, match="listed twice"):
            await rs.reviews.complete(
                number,
                CompleteReviewInput(actor="alice", summary="s", action_items=[items[0]] * 2),
            )
        state = await rs.reviews.complete(
            number,
            CompleteReviewInput(
                actor="alice",
                summary="A gateway timeout was lowered by mistake.",
                contributing_factors=["config change without review"],
                what_went_well=["fast rollback"],
                action_items=items,
            ),
        )
        assert state.status == ReviewStatus.COMPLETED
        assert state.incident.status == Status.CLOSED and state.incident.closed_at is not None
        # tracked in the workflow's state: due at 09:00 Berlin on their dates
        assert not state.action_item_reminders
        tracked = [(i.owner, i.due_date, i.due_at, i.status) for i in state.action_items]
        assert tracked == [
            ("bob", yesterday, datetime(*yesterday.timetuple()[:3], 9, tzinfo=BERLIN), "open"),
            ("carol", later, datetime(*later.timetuple()[:3], 9, tzinfo=BERLIN), "open"),
        ]

        (ticket,) = await rs.rows(
            "SELECT status, closed_at, last_seq FROM incidents WHERE number = %s", number
        )
        assert ticket["status"] == "closed" and ticket["closed_at"] is not None
        events = await rs.events(number)
        kinds = [e["kind"] for e in events]
        assert kinds.index("review_completed") + 1 == kinds.index("closed")
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert ticket["last_seq"] >= kinds.index("closed") + 1

        rows = await rs.rows(
            "SELECT owner, title, due_date, service, status FROM action_items "
            "WHERE number = %s ORDER BY owner",
            number,
        )
        assert rows == [
            {
                "owner": "bob",
                "title": "Alert on gateway latency",
                "due_date": yesterday,
                "service": "checkout",
                "status": "open",
            },
            {
                "owner": "carol",
                "title": "Review config changes",
                "due_date": later,
                "service": "checkout",
                "status": "open",
            },
        ]

        row = await rs.review_row(number)
        assert row is not None and row["summary"] == "A gateway timeout was lowered by mistake."
        assert row["completed_at"] is not None
        document = row["document"]
        assert "*Review completed by alice" in document
        assert "- config change without review" in document
        assert f"| bob | Alert on gateway latency | {yesterday.isoformat()} |" in document
        assert "**review completed** by alice" in document and "**closed** by alice" in document

        async def completion_sent() -> set[str]:
            rows = await rs.notified(number, "review_completed")
            return {r["recipient"] for r in rows if r["status"] == "sent"}

        # facilitator, attendees, action item owners and the policy's owner
        async def completion_sent_to_all() -> bool:
            return await completion_sent() == PEOPLE | {"dave"}

        await wait_for(completion_sent_to_all, message="completion sent to all")

        # the due-date reminder: yesterday's item now, the one due in 30 days not yet
        async def due_sent() -> list[dict[str, object]]:
            return [
                r for r in await rs.notified(number, "action_item_due") if r["status"] == "sent"
            ]

        sent = await wait_for(due_sent, message="action item reminder")
        assert {r["recipient"] for r in sent} == {"bob"}
        (due_event,) = await rs.events(number, "action_item_due")
        assert due_event["details"]["items"] == ["Alert on gateway latency"]

        # open action items per service, soonest first; a closed one drops out
        listed = [
            i for i in await rs.reviews.open_action_items(service="checkout") if i.number == number
        ]
        assert [(i.owner, i.title) for i in listed] == [
            ("bob", "Alert on gateway latency"),
            ("carol", "Review config changes"),
        ]
        assert not [
            i for i in await rs.reviews.open_action_items(service="billing") if i.number == number
        ]
        bob_item = state.action_items[0]
        done_item = await rs.reviews.update_action_item(
            number, ActionItemChange(actor="bob", id=bob_item.id, status=ActionItemStatus.DONE)
        )
        assert done_item.status == "done" and done_item.closed_at is not None
        assert done_item.updated_by == "bob"
        listed = [
            i for i in await rs.reviews.open_action_items(service="checkout") if i.number == number
        ]
        assert [i.owner for i in listed] == ["carol"]

        with pytest.raises(ActionRejected, match="it is completed"):
            await rs.reviews.complete(number, CompleteReviewInput(actor="alice", summary="again"))
        with pytest.raises(ActionRejected):
            await rs.reviews.waive(number, "dave", "no", admin=True)
        await record_review_history(temporal_client, number, "review_completed_tracked")


async def test_waive_needs_admin_and_closes_without_review(
    temporal_client: Client, database_url: str, task_queue: str, smtp_server: SmtpServer
) -> None:
    policy = review_policy()
    async with review_stack(
        temporal_client, database_url, task_queue, policy, smtp_server.port
    ) as rs:
        number = await scheduled(rs, smtp_server, "review-waive")
        with pytest.raises(NotAllowed, match="admin"):
            await rs.reviews.waive(number, "bob", "not worth it", admin=False)
        assert (await rs.reviews.get(number)).status == ReviewStatus.SCHEDULED

        state = await rs.reviews.waive(number, "dave", "duplicate of INC-1", admin=True)
        assert state.status == ReviewStatus.WAIVED and state.waived_by == "dave"
        assert state.incident.status == Status.CLOSED

        row = await rs.wait_review_status(number, ReviewStatus.WAIVED)
        assert row["summary"] == "duplicate of INC-1" and row["completed_at"] is not None
        (ticket,) = await rs.rows("SELECT status FROM incidents WHERE number = %s", number)
        assert ticket["status"] == "closed"
        (closed,) = await rs.events(number, "closed")
        assert closed["actor"] == "dave"
        assert closed["details"]["reason"] == "review waived: duplicate of INC-1"
        assert not await rs.events(number, "review_completed")

        # the meeting leaves every calendar: same UID, higher SEQUENCE, METHOD:CANCEL
        def cancellations() -> list[Invite]:
            return [
                i
                for i in invites(smtp_server.sink.messages)
                if str(i.calendar["METHOD"]) == "CANCEL"
            ]

        await wait_for(lambda: len(cancellations()) >= len(PEOPLE), message="cancellations")
        assert {i.to for i in cancellations()} == {email_of(p) for p in PEOPLE}
        for invite in cancellations():
            assert str(invite.event["UID"]) == review_uid(number)
            assert invite.sequence == 1 and str(invite.event["STATUS"]) == "CANCELLED"
            assert str(invite.message["Subject"]).startswith("Cancelled:")
        sent = await rs.notified(number, "closed")
        assert {r["recipient"] for r in sent if r["channel"] == "email"} >= PEOPLE

        # refused by the workflow, or (once it has finished) by the client: both name it
        with pytest.raises((ActionRejected, ReviewFinished), match="waived"):
            await rs.reviews.reschedule(number, datetime.now(UTC) + timedelta(hours=1), "bob")
        # the workflow has finished: nothing left to wait for
        handle = temporal_client.get_workflow_handle(f"review:{number}")
        await asyncio.wait_for(handle.result(), timeout=10)
        await record_review_history(temporal_client, number, "review_waived_cancelled")
        # once it has finished, the client reads its last state and names its status
        with pytest.raises(ReviewFinished, match="is waived: its workflow has finished"):
            await rs.reviews.reschedule(number, datetime.now(UTC) + timedelta(hours=1), "bob")


async def test_severity_without_review_closes_without_one(
    temporal_client: Client, database_url: str, task_queue: str, smtp_server: SmtpServer
) -> None:
    policy = review_policy(review_required=("SEV1",))
    async with review_stack(
        temporal_client, database_url, task_queue, policy, smtp_server.port
    ) as rs:
        number = await resolved_incident(rs, "review-sev4", severity=Severity.SEV4)

        async def closed() -> bool:
            rows = await rs.rows("SELECT status FROM incidents WHERE number = %s", number)
            return bool(rows) and rows[0]["status"] == "closed"

        await wait_for(closed, message="SEV4 closed after the reopen window")
        assert (await rs.client.get(number)).review_workflow_id is None
        with pytest.raises(IncidentNotFound):
            await rs.reviews.get(number)
        assert await rs.review_row(number) is None
        assert not invites(smtp_server.sink.messages)
