"""IncidentWorkflow against the real dev server and PostgreSQL, on a seconds-scale policy."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.enums.v1 import EventType

from schemas.actions import (
    AcknowledgeInput,
    ChangeSeverityInput,
    CloseInput,
    NoteInput,
    ResolveInput,
)
from schemas.enums import Action, EventKind, Severity, Status
from schemas.incident import Alert
from starter.errors import ActionRejected, IncidentNotFound, InvalidAction, UnknownService
from tests.conftest import wait_for
from tests.support_incidents import Stack, make_policy, record_history, running_stack


def alert(key: str, title: str = "Checkout 500s", **kw: object) -> Alert:
    return Alert(service="checkout", title=title, dedup_key=key, **kw)  # type: ignore[arg-type]


def kinds(snapshot) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.kind.value for e in snapshot.timeline]


async def test_escalates_level_by_level_until_acknowledged(
    temporal_client, database_url, task_queue
):
    policy = make_policy(level_delay=1.5, ack_within=1.5)
    async with running_stack(temporal_client, database_url, task_queue, policy) as st:
        ref = await st.client.trigger(alert("esc-1"))
        assert ref.created and ref.number.startswith("INC-")

        async def recipients() -> list[str]:
            return [r["recipient"] for r in await st.notified(ref.number)]

        await wait_for(lambda: _has(recipients, "alice"), message="level 1 paged")
        await wait_for(lambda: _has(recipients, "bob"), timeout=10, message="level 2 paged")
        snap = await st.client.get(ref.number)
        assert "sla_breached" in kinds(snap)
        assert snap.escalation.level == 2
        breach = next(e for e in snap.timeline if e.kind == EventKind.SLA_BREACHED)
        assert breach.details["clock"] == "ack"

        async def breach_row() -> bool:
            rows = await st.rows(
                "SELECT kind FROM incident_events WHERE number = %s AND kind = 'sla_breached'",
                ref.number,
            )
            return bool(rows)

        await wait_for(breach_row, message="sla_breached in incident_events")

        await st.client.acknowledge(ref.number, "bob")
        # Asserting that a timer does NOT fire needs its instant to pass: 2 delays + margin.
        await asyncio.sleep(3.5)
        snap = await st.client.get(ref.number)
        assert snap.status == Status.ACKNOWLEDGED
        assert "carol" not in await recipients()
        assert snap.escalation.level == 2
        assert snap.deadlines.next_escalation is None
        await record_history(st, ref.number, "escalate_then_acknowledge")


async def _has(probe, name: str) -> bool:  # type: ignore[no-untyped-def]
    return name in await probe()


async def test_levels_loop_repeat_times_then_exhaust(temporal_client, database_url, task_queue):
    policy = make_policy(level_delay=0.4, levels=2, repeat=1, ack_within=30)
    async with running_stack(temporal_client, database_url, task_queue, policy) as st:
        ref = await st.client.trigger(alert("loop-1"))

        async def exhausted():  # type: ignore[no-untyped-def]
            snap = await st.client.get(ref.number)
            return snap if "escalation_exhausted" in kinds(snap) else None

        snap = await wait_for(exhausted, timeout=15, message="escalation_exhausted")
        pages = [
            (1 if e.kind == EventKind.TRIGGERED else e.details["level"])
            for e in snap.timeline
            if e.kind in (EventKind.TRIGGERED, EventKind.ESCALATED)
        ]
        assert pages == [1, 2, 1, 2]
        # exhausted once, after the last page, and nothing escalates after it
        escalation = [
            k for k in kinds(snap) if k in ("triggered", "escalated", "escalation_exhausted")
        ]
        assert escalation == [
            "triggered",
            "escalated",
            "escalated",
            "escalated",
            "escalation_exhausted",
        ]
        exhausted_event = next(e for e in snap.timeline if e.kind == EventKind.ESCALATION_EXHAUSTED)
        assert exhausted_event.details == {"levels": 2, "loops": 2}
        assert snap.escalation.exhausted
        assert not snap.escalation.active and snap.deadlines.next_escalation is None
        paged = await wait_for(
            lambda: _pages_written(st, ref.number, 4), message="every page written"
        )
        # two loops of two levels: each of alice and bob paged exactly twice, nobody else
        assert sorted(paged) == ["alice", "alice", "bob", "bob"]
        await record_history(st, ref.number, "escalation_exhausted")


async def _pages_written(st: Stack, number: str, count: int) -> list[str] | None:
    """The recipients of the trigger and escalation pages once ``count`` are written and the
    exhaustion notice is too (it is the incident's last notification), else None."""
    rows = await st.notified(number)
    paged = [r["recipient"] for r in rows if r["event_kind"] in ("triggered", "escalated")]
    notice = any(r["event_kind"] == "escalation_exhausted" for r in rows)
    return paged if notice and len(paged) >= count else None


async def test_illegal_actions_are_rejected_without_trace(
    temporal_client, database_url, task_queue
):
    policy = make_policy(level_delay=60, ack_within=60)
    async with running_stack(temporal_client, database_url, task_queue, policy) as st:
        ref = await st.client.trigger(alert("illegal-1"))
        with pytest.raises(ActionRejected) as err:
            await st.client.act(ref.number, Action.CLOSE, CloseInput(actor="bob"))
        message = str(err.value)
        assert ref.number in message and "triggered" in message and "acknowledge" in message
        with pytest.raises(InvalidAction, match="text must not be empty"):
            await st.client.act(
                ref.number, Action.ADD_NOTE, NoteInput.model_construct(actor="bob", text="   ")
            )
        with pytest.raises(InvalidAction, match="actor is required"):
            await st.client.act(
                ref.number, Action.ACKNOWLEDGE, AcknowledgeInput.model_construct(actor=" ")
            )
        await st.client.acknowledge(ref.number, "bob")
        with pytest.raises(ActionRejected, match="acknowledged: cannot acknowledge"):
            await st.client.acknowledge(ref.number, "carol")
        history = await st.client.history(ref.number)
        accepted = [
            e
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        ]
        # the trigger's ingest_alert and the one acknowledge: nothing from the rejected four
        assert len(accepted) == 2
        snap = await st.client.get(ref.number)
        assert kinds(snap).count("acknowledged") == 1 and "closed" not in kinds(snap)
        with pytest.raises(IncidentNotFound):
            await st.client.get("INC-999999")
        with pytest.raises(UnknownService):
            await st.client.trigger(Alert(service="nope", title="x"))


async def test_concurrent_triggers_make_one_incident(temporal_client, database_url, task_queue):
    policy = make_policy(level_delay=60, ack_within=60)
    async with running_stack(temporal_client, database_url, task_queue, policy) as st:
        refs = await asyncio.gather(*(st.client.trigger(alert("dup-1")) for _ in range(50)))
        assert len({r.number for r in refs}) == 1
        assert sum(r.created for r in refs) == 1
        snap = await st.client.get(refs[0].number)
        assert snap.alert_count == 50
        rows = await wait_for(
            lambda: st.rows(
                "SELECT alert_count FROM incidents WHERE number = %s AND alert_count = 50",
                refs[0].number,
            ),
            message="ticket row with count 50",
        )
        assert rows[0]["alert_count"] == 50
        await record_history(st, refs[0].number, "concurrent_triggers")


async def test_severity_change_retimes_clocks(temporal_client, database_url, task_queue):
    policy = make_policy(level_delay=60, ack_within=30, mitigate_within=90, resolve_within=300)
    async with running_stack(temporal_client, database_url, task_queue, policy) as st:
        ref = await st.client.trigger(alert("sev-1", severity=Severity.SEV3))
        before = (await st.client.get(ref.number)).deadlines
        snap = await st.client.act(
            ref.number,
            Action.CHANGE_SEVERITY,
            ChangeSeverityInput(actor="bob", severity=Severity.SEV1),
        )
        after = snap.deadlines
        assert snap.severity == Severity.SEV1
        assert after.ack is not None and before.ack is not None and after.ack < before.ack
        assert after.mitigate < before.mitigate and after.resolve < before.resolve  # type: ignore[operator]
        assert (before.ack - after.ack).total_seconds() == pytest.approx(20, abs=0.01)
        other = await st.client.trigger(alert("sev-2", severity=Severity.SEV3))

        async def listed_sev1_triggered():  # type: ignore[no-untyped-def]
            rows = await st.client.list(severity="SEV1", status="triggered")
            return rows if ref.number in {r.number for r in rows} else None

        # other tests share the namespace: every row must match, ours in, the SEV3 one out
        listed = await wait_for(listed_sev1_triggered, message="listed as SEV1")
        assert all(r.severity == Severity.SEV1 and r.status == Status.TRIGGERED for r in listed)
        assert other.number not in {r.number for r in listed}
        await record_history(st, ref.number, "severity_change")


async def test_worker_restart_mid_escalation_fires_next_level_once(
    temporal_client, database_url, task_queue
):
    policy = make_policy(level_delay=1.0, ack_within=30)
    async with running_stack(
        temporal_client, database_url, task_queue, policy, start_worker=False
    ) as st:
        async with st.worker():
            ref = await st.client.trigger(alert("restart-1"))
            await wait_for(lambda: _has(_recipients(st, ref.number), "alice"), message="L1")
        # worker gone; level 2's instant passes while nobody polls
        await asyncio.sleep(1.5)
        async with st.worker():
            await wait_for(
                lambda: _has(_recipients(st, ref.number), "bob"), message="L2 after restart"
            )
            await wait_for(lambda: _has(_recipients(st, ref.number), "carol"), message="L3")
            await st.client.acknowledge(ref.number, "carol")
            snap = await st.client.get(ref.number)
        levels = [e.details["level"] for e in snap.timeline if e.kind == EventKind.ESCALATED]
        assert levels == [2, 3]
        recipients = await _recipients(st, ref.number)()
        assert recipients.count("bob") == 1 and recipients.count("carol") == 1


def _recipients(st, number):  # type: ignore[no-untyped-def]
    async def probe() -> list[str]:
        return [
            r["recipient"]
            for r in await st.notified(number)
            if r["event_kind"] in ("triggered", "escalated")
        ]

    return probe


async def test_flapping_alert_continues_as_new(temporal_client, database_url, task_queue):
    policy = make_policy(level_delay=300, ack_within=300)
    async with running_stack(temporal_client, database_url, task_queue, policy) as st:
        ref = await st.client.trigger(alert("flap-1"))
        for batch in range(6):
            await asyncio.gather(
                *(st.client.repeat("checkout", "flap-1") for _ in range(100 if batch else 99))
            )
        snap = await wait_for(
            lambda: _count_is(st, ref.number, 600), timeout=30, message="count 600"
        )

        async def runs() -> bool:
            query = f"WorkflowId = '{ref.workflow_id}'"
            return len([wf async for wf in temporal_client.list_workflows(query)]) >= 2

        await wait_for(runs, timeout=20, message="at least one continue-as-new")
        snap = await st.client.get(ref.number)
        assert snap.alert_count == 600
        assert snap.number == ref.number and snap.timeline[0].kind == EventKind.TRIGGERED
        assert [e.seq for e in snap.timeline] == list(range(1, len(snap.timeline) + 1))


async def _count_is(st, number, count):  # type: ignore[no-untyped-def]
    snap = await st.client.get(number)
    return snap if snap.alert_count == count else None


async def test_reopen_inside_window_new_incident_after(temporal_client, database_url, task_queue):
    policy = make_policy(level_delay=60, ack_within=60, reopen_window=1.5)
    async with running_stack(temporal_client, database_url, task_queue, policy) as st:
        first = await st.client.trigger(alert("reopen-1"))
        await st.client.act(first.number, Action.RESOLVE, ResolveInput(actor="bob"))
        again = await st.client.trigger(alert("reopen-1"))
        assert again.number == first.number and again.reopened and not again.created
        snap = await st.client.get(first.number)
        assert snap.status == Status.TRIGGERED and snap.reopen_count == 1
        await st.client.clear("checkout", "reopen-1")  # auto-resolve on clear
        await wait_for(
            lambda: _status_is(st, first.number, Status.CLOSED),
            timeout=10,
            message="closed after window",
        )
        later = await st.client.trigger(alert("reopen-1"))
        assert later.created and later.number != first.number
        closed = await st.client.get(first.number)
        assert closed.status == Status.CLOSED and closed.closed_at is not None
        await record_history(st, first.number, "reopen_then_close")
        rows = await wait_for(
            lambda: st.rows(
                "SELECT status FROM incidents WHERE number = %s AND status = 'closed'", first.number
            ),
            message="ticket closed",
        )
        assert rows


async def _status_is(st, number, status):  # type: ignore[no-untyped-def]
    return (await st.client.get(number)).status == status
