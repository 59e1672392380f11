"""Ticket-store activities against a real PostgreSQL: idempotent, never regressing, unique."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.db import create_pool
from activities.tickets import TicketActivities
from schemas.activity_io import AllocateNumberInput, RecordIncidentInput
from schemas.enums import EventKind, Status
from schemas.incident import IncidentSnapshot, TimelineEvent
from tests.support_tickets import T0, make_events, make_snapshot

Pool = AsyncConnectionPool[psycopg.AsyncConnection]


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[Pool]:
    pool = await create_pool(database_url, max_size=10)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="module")
def tickets(pool: Pool) -> TicketActivities:
    return TicketActivities(pool)


async def query(pool: Pool, sql: str, params: Any = None) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


async def new_number(tickets: TicketActivities) -> str:
    return await tickets.allocate_incident_number(
        AllocateNumberInput(workflow_id=f"wf-{uuid.uuid4()}", run_id="")
    )


async def test_record_incident_twice_writes_one_row_and_one_row_per_event(
    tickets: TicketActivities, pool: Pool
) -> None:
    number = await new_number(tickets)
    snapshot = make_snapshot(number, last_seq=3, status=Status.ACKNOWLEDGED)
    data = RecordIncidentInput(snapshot=snapshot, events=snapshot.timeline)

    await tickets.record_incident(data)
    await tickets.record_incident(data)

    [row] = await query(pool, "SELECT * FROM incidents WHERE number = %s", (number,))
    assert row["number_seq"] == int(number.removeprefix("INC-"))
    assert (row["workflow_id"], row["run_id"]) == (snapshot.workflow_id, "run-1")
    assert (row["status"], row["severity"], row["priority"]) == ("acknowledged", "SEV2", "P2")
    assert (row["impact"], row["urgency"], row["category"]) == ("high", "medium", "software")
    assert row["commander"] == "alice"
    assert row["escalation_level"] == 1
    assert row["labels"] == snapshot.labels
    assert row["breaches"][0]["clock"] == "ack"
    assert row["last_seq"] == 3
    assert row["created_at"] == T0
    assert row["acknowledged_at"] == snapshot.acknowledged_at
    assert row["resolved_at"] is None
    stored = IncidentSnapshot.model_validate(row["snapshot"])
    assert stored == snapshot.summary()
    assert stored.timeline == []

    events = await query(
        pool, "SELECT * FROM incident_events WHERE number = %s ORDER BY seq", (number,)
    )
    assert [(e["seq"], e["kind"], e["actor"]) for e in events] == [
        (e.seq, e.kind.value, e.actor) for e in snapshot.timeline
    ]
    assert events[0]["at"] == snapshot.timeline[0].at
    assert events[0]["details"] == {"alert_id": "a-1"}


async def test_stale_record_never_regresses_a_newer_row(
    tickets: TicketActivities, pool: Pool
) -> None:
    number = await new_number(tickets)
    newer = make_snapshot(number, last_seq=5, status=Status.ACKNOWLEDGED)
    stale = make_snapshot(number, last_seq=2, status=Status.TRIGGERED, title="stale title")

    await tickets.record_incident(RecordIncidentInput(snapshot=newer, events=make_events(1)))
    # a delayed retry of an older write arrives late, carrying events not yet stored
    await tickets.record_incident(
        RecordIncidentInput(snapshot=stale, events=make_events(2, start=1))
    )

    [row] = await query(pool, "SELECT * FROM incidents WHERE number = %s", (number,))
    assert (row["status"], row["last_seq"], row["title"]) == ("acknowledged", 5, newer.title)
    assert row["snapshot"]["status"] == "acknowledged"
    # the stale write's events are still recorded: events are insert-if-absent
    assert await query(
        pool, "SELECT seq FROM incident_events WHERE number = %s ORDER BY seq", (number,)
    ) == [{"seq": 1}, {"seq": 2}]

    resolved = make_snapshot(
        number, last_seq=6, status=Status.RESOLVED, resolved_at=T0.replace(hour=11)
    )
    await tickets.record_incident(RecordIncidentInput(snapshot=resolved))
    [row] = await query(pool, "SELECT * FROM incidents WHERE number = %s", (number,))
    assert (row["status"], row["last_seq"]) == ("resolved", 6)
    assert row["resolved_at"] == T0.replace(hour=11)


async def test_coalesced_repeat_refreshes_the_event_details(
    tickets: TicketActivities, pool: Pool
) -> None:
    number = await new_number(tickets)

    def repeat(count: int) -> TimelineEvent:
        return TimelineEvent(
            seq=2, at=T0, actor="alertmanager", kind=EventKind.ALERT_REPEATED,
            details={"count": count},
        )  # fmt: skip

    snapshot = make_snapshot(number, last_seq=2)
    await tickets.record_incident(RecordIncidentInput(snapshot=snapshot, events=[repeat(2)]))
    await tickets.record_incident(
        RecordIncidentInput(snapshot=snapshot, events=[repeat(3), repeat(7)])
    )

    stored = await query(
        pool, "SELECT seq, details FROM incident_events WHERE number = %s", (number,)
    )
    assert stored == [{"seq": 2, "details": {"count": 7}}]


async def test_concurrent_allocations_give_distinct_numbers(tickets: TicketActivities) -> None:
    numbers = await asyncio.gather(
        *(
            tickets.allocate_incident_number(AllocateNumberInput(workflow_id=f"wf-{i}"))
            for i in range(50)
        )
    )
    assert len(set(numbers)) == 50
    assert all(re.fullmatch(r"INC-\d+", n) for n in numbers)


async def test_allocation_returns_the_number_already_recorded_for_the_run(
    tickets: TicketActivities,
) -> None:
    number = await new_number(tickets)
    snapshot = make_snapshot(number, workflow_id=f"wf-{uuid.uuid4()}", run_id="run-42")
    await tickets.record_incident(RecordIncidentInput(snapshot=snapshot))

    again = AllocateNumberInput(workflow_id=snapshot.workflow_id, run_id="run-42")
    assert await tickets.allocate_incident_number(again) == number
    other_run = AllocateNumberInput(workflow_id=snapshot.workflow_id, run_id="run-43")
    assert await tickets.allocate_incident_number(other_run) != number


async def test_activities_run_in_a_real_activity_context(
    tickets: TicketActivities, pool: Pool
) -> None:
    env = ActivityEnvironment()
    number = await env.run(
        tickets.allocate_incident_number, AllocateNumberInput(workflow_id="wf-env")
    )
    snapshot = make_snapshot(number, last_seq=2)
    await env.run(tickets.record_incident, RecordIncidentInput(snapshot=snapshot))
    assert await query(pool, "SELECT last_seq FROM incidents WHERE number = %s", (number,)) == [
        {"last_seq": 2}
    ]


async def test_recording_an_unnumbered_incident_is_a_non_retryable_error(
    tickets: TicketActivities, pool: Pool
) -> None:
    with pytest.raises(ApplicationError) as raised:
        await tickets.record_incident(RecordIncidentInput(snapshot=make_snapshot("")))
    assert raised.value.non_retryable
    assert await query(pool, "SELECT 1 FROM incidents WHERE number = ''") == []


async def test_open_incident_numbers_and_writes_in_one_go_and_a_retry_keeps_the_number(
    tickets: TicketActivities, pool: Pool
) -> None:
    snapshot = make_snapshot("", workflow_id=f"wf-{uuid.uuid4()}", run_id="run-7", last_seq=2)
    data = RecordIncidentInput(snapshot=snapshot, events=snapshot.timeline)
    number = await ActivityEnvironment().run(tickets.open_incident, data)
    assert re.fullmatch(r"INC-\d+", number)
    assert await tickets.open_incident(data) == number  # a retry after the commit
    rows = await query(
        pool,
        "SELECT number, last_seq FROM incidents WHERE workflow_id = %s",
        (snapshot.workflow_id,),
    )
    assert rows == [{"number": number, "last_seq": 2}]
    events = await query(pool, "SELECT seq FROM incident_events WHERE number = %s", (number,))
    assert sorted(e["seq"] for e in events) == [e.seq for e in snapshot.timeline]
