"""Clocks and side paths of IncidentWorkflow: ack timeout, status-update reminders, failed
notifications in the timeline, cancel / merge / assign / manual escalation."""

from __future__ import annotations

import pytest

from schemas.actions import (
    AssignInput,
    CancelInput,
    EscalateInput,
    MergeInput,
    StatusUpdateInput,
)
from schemas.enums import Action, Clock, EventKind, Role, Status
from schemas.incident import Alert
from schemas.policy import User
from tests.conftest import wait_for
from tests.support_drills import TIME_SCALE
from tests.support_incidents import make_policy, running_stack
from tests.support_receivers import HttpReceiver, http_receiver_fixture  # noqa: F401
from workflows.incident import IncidentWorkflow


def alert(key: str) -> Alert:
    return Alert(service="checkout", title="Search latency", dedup_key=key)


async def timeline_has(st, number: str, kind: EventKind, **details: object):  # type: ignore[no-untyped-def]
    snap = await st.client.get(number)
    for e in snap.timeline:
        if e.kind == kind and all(e.details.get(k) == v for k, v in details.items()):
            return snap
    return None


async def test_acknowledged_but_not_mitigated_escalates_again(
    temporal_client, database_url, task_queue
):
    policy = make_policy(level_delay=60, ack_within=60, mitigate_within=1.0)
    async with running_stack(temporal_client, database_url, task_queue, policy) as st:
        for attempt in range(3):
            ref = await st.client.trigger(alert(f"acktimeout-{attempt}"))
            acked = await st.client.acknowledge(ref.number, "alice")
            # precondition: acknowledged before the 1 s mitigate clock ran out (a loaded host
            # may be slower than that: then try again with a new incident)
            if not acked.breaches:
                break
        else:
            raise AssertionError("could not acknowledge within the mitigate clock in 3 tries")
        mitigate_deadline = acked.deadlines.mitigate
        assert mitigate_deadline is not None
        snap = await wait_for(
            lambda: timeline_has(st, ref.number, EventKind.ESCALATED, level=2),
            timeout=10 * TIME_SCALE,
            message="re-escalation after the mitigate clock",
        )
        assert snap.status == Status.ACKNOWLEDGED
        [breach] = snap.breaches
        assert breach.clock == Clock.MITIGATE
        # the clock that fired is the one set at the start, at or after its instant
        assert breach.deadline == mitigate_deadline
        late = (breach.at - breach.deadline).total_seconds()
        assert late >= 0 and breach.late_by_seconds == pytest.approx(late)
        # the breach, then (because of it) the re-escalation
        breached = next(e for e in snap.timeline if e.kind == EventKind.SLA_BREACHED)
        escalated = next(e for e in snap.timeline if e.kind == EventKind.ESCALATED)
        assert breached.details["clock"] == "mitigate"
        assert breached.seq < escalated.seq and breached.at <= escalated.at
        assert escalated.details["reason"] == "mitigate clock breached"
        # fired at its instant, not at a later wake-up (TEST_TIME_SCALE for a loaded host)
        assert breach.late_by_seconds < 2 * TIME_SCALE


async def test_status_update_reminders_until_an_update_is_posted(
    temporal_client, database_url, task_queue
):
    policy = make_policy(level_delay=60, ack_within=60, update_every=0.8)
    async with running_stack(temporal_client, database_url, task_queue, policy) as st:
        ref = await st.client.trigger(alert("updates-1"))
        acked = await st.client.acknowledge(ref.number, "alice")
        assert acked.deadlines.update is not None
        snap = await wait_for(
            lambda: timeline_has(st, ref.number, EventKind.STATUS_UPDATE_DUE),
            timeout=10,
            message="status_update_due",
        )
        due_seq = next(e.seq for e in snap.timeline if e.kind == EventKind.STATUS_UPDATE_DUE)
        await wait_for(
            lambda: _notified_at(st, ref.number, due_seq, "alice"), message="commander reminded"
        )
        # the reminder goes to the commander alone, as a status_update_due notice
        reminded = [
            (r["recipient"], r["event_kind"])
            for r in await st.notified(ref.number)
            if r["seq"] == due_seq
        ]
        assert reminded == [("alice", "status_update_due")]
        posted = await st.client.act(
            ref.number,
            Action.POST_STATUS_UPDATE,
            StatusUpdateInput(actor="alice", text="Rolled back the deploy"),
        )
        assert posted.last_status_update_at is not None
        assert posted.deadlines.update is not None
        assert posted.deadlines.update > posted.last_status_update_at


async def _notified_at(st, number: str, seq: int, recipient: str) -> bool:  # type: ignore[no-untyped-def]
    return any(r["seq"] == seq and r["recipient"] == recipient for r in await st.notified(number))


async def test_failed_notification_lands_in_the_timeline(
    temporal_client, database_url, task_queue, http_receiver: HttpReceiver
):
    http_receiver.script("/dave", 404)
    base = make_policy(level_delay=60, ack_within=60)
    users = [*base.users, User(name="erin", webhook=http_receiver.url("/dave"))]
    policy = base.model_copy(update={"users": users})
    async with running_stack(temporal_client, database_url, task_queue, policy) as st:
        ref = await st.client.trigger(alert("failed-notify-1"))
        await st.client.act(
            ref.number, Action.ESCALATE, EscalateInput(actor="alice", target="user:erin")
        )
        snap = await wait_for(
            lambda: timeline_has(st, ref.number, EventKind.NOTIFICATION_FAILED),
            timeout=10,
            message="notification_failed",
        )
        failed = next(e for e in snap.timeline if e.kind == EventKind.NOTIFICATION_FAILED)
        assert failed.details["target"] == "user:erin"
        assert "404" in failed.details["reason"]
        assert len(http_receiver.requests("/dave")) == 1
        rows = [r for r in await st.notified(ref.number) if r["recipient"] == "erin"]
        assert [r["status"] for r in rows] == ["failed"]


async def test_cancel_merge_assign_and_manual_escalation(temporal_client, database_url, task_queue):
    policy = make_policy(level_delay=60, ack_within=60)
    async with running_stack(temporal_client, database_url, task_queue, policy) as st:
        first = await st.client.trigger(alert("side-1"))
        second = await st.client.trigger(alert("side-2"))
        snap = await st.client.act(
            first.number, Action.ASSIGN, AssignInput(actor="alice", role=Role.SCRIBE, user="carol")
        )
        assert snap.responders[Role.SCRIBE] == "carol"
        assert snap.participants == ["alice", "carol"]
        snap = await st.client.act(first.number, Action.ESCALATE, EscalateInput(actor="alice"))
        assert snap.escalation.level == 2
        merged = await st.client.act(
            second.number, Action.MERGE_INTO, MergeInput(actor="alice", into=first.number)
        )
        assert merged.status == Status.CLOSED and merged.merged_into == first.number
        cancelled = await st.client.act(
            first.number, Action.CANCEL, CancelInput(actor="alice", reason="false alarm")
        )
        assert cancelled.status == Status.CLOSED
        assert cancelled.close_reason == "cancelled: false alarm"
        handle = temporal_client.get_workflow_handle_for(
            IncidentWorkflow.run, first.workflow_id, run_id=first.run_id
        )
        final = await handle.result()
        assert final.status == Status.CLOSED
        rows = await wait_for(
            lambda: st.rows(
                "SELECT number FROM incidents WHERE number = ANY(%s) AND status = 'closed'",
                [first.number, second.number],
            ),
            message="both tickets closed",
        )
        assert len(rows) == 2
