"""Open incidents whose next escalation is due at an instant the benchmark chooses.

An incident triggered over HTTP escalates ``level delay`` after its level-1 page, an instant
nobody can pin down in advance, so "2,000 deadlines at one instant" cannot be staged that
way. Instead each incident is started through the workflow's own continue-as-new entry
(``IncidentStart.carried``): a snapshot in the state a triggered incident is in right after
its level-1 page (number allocated, TRIGGERED event, level 1 paged), with
``next_escalation`` set to the chosen instant. From there on everything is the production
path: the same workflow code fires the durable timer, appends ESCALATED, runs the notify
activity (outbox row, console delivery) and writes the ticket.

Lateness is read from PostgreSQL: the level-2 notification's ``sent_at`` minus the deadline
(what a responder would see), and the ESCALATED event's ``at`` (the workflow task that fired)
minus the deadline.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from psycopg_pool import AsyncConnectionPool
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError

from activities.tickets import TicketActivities
from bench.harness import Stack, gather_limited, wait_until
from bench.policy import ESCALATE_SERVICE
from schemas import search_attributes as sa
from schemas.activity_io import RecordIncidentInput
from schemas.classification import priority_for
from schemas.enums import Category, EventKind, Impact, Severity, Status, Urgency
from schemas.incident import (
    Alert,
    Deadlines,
    EscalationState,
    IncidentSnapshot,
    IncidentStart,
    TimelineEvent,
)
from starter.client import incident_workflow_id
from workflows.incident import IncidentWorkflow

#: the ESCALATED (level 2) event is the second event of a seeded incident
ESCALATED_SEQ = 2


@dataclass(frozen=True)
class Seeded:
    number: str
    workflow_id: str
    deadline: datetime


@dataclass
class Lateness:
    """Seconds late per escalation: ``notified`` (level-2 notification sent) and ``fired``
    (the workflow task that fired the timer); ``missing`` never arrived in time."""

    notified: list[float]
    fired: list[float]
    missing: int
    #: last notification sent minus the earliest deadline
    drain: float


def now() -> datetime:
    return datetime.now(UTC)


async def allocate_numbers(stack: Stack, count: int) -> list[str]:
    rows = await stack.rows(
        "SELECT 'INC-' || nextval('incident_number_seq') FROM generate_series(1, %s)", count
    )
    return [r[0] for r in rows]


def _start(stack: Stack, number: str, key: str, deadline: datetime) -> IncidentStart:
    service = stack.policy.service(ESCALATE_SERVICE)
    assert service is not None
    policy = stack.incidents.incident_policy(service)
    at = now()
    alert = Alert(
        alert_id=uuid.uuid4().hex,
        service=ESCALATE_SERVICE,
        title=f"bench escalation {key}",
        dedup_key=key,
        source="bench",
        severity=Severity.SEV3,
    )
    far = at + timedelta(hours=2)
    snapshot = IncidentSnapshot(
        number=number,
        title=alert.title,
        service=ESCALATE_SERVICE,
        severity=Severity.SEV3,
        priority=priority_for(Impact.MEDIUM, Urgency.MEDIUM),
        impact=Impact.MEDIUM,
        urgency=Urgency.MEDIUM,
        category=Category.OTHER,
        dedup_key=key,
        source="bench",
        created_at=at,
        escalation=EscalationState(policy=policy.escalation, level=1, max_level=1),
        deadlines=Deadlines(
            ack=far,
            mitigate=far + timedelta(hours=2),
            resolve=far + timedelta(hours=6),
            next_escalation=deadline,
        ),
        timeline=[
            TimelineEvent(
                seq=1,
                at=at,
                actor="monitoring",
                kind=EventKind.TRIGGERED,
                details={"source": "bench", "dedup_key": key, "title": alert.title},
            )
        ],
        last_seq=1,
    )
    return IncidentStart(alert=alert, policy=policy, carried=snapshot)


async def seed(
    stack: Stack,
    deadlines: list[datetime],
    *,
    prefix: str,
    concurrency: int = 64,
    tickets: bool = False,
) -> list[Seeded]:
    """Start one incident per deadline; returns once every start was accepted.

    ``tickets`` also writes each incident's ticket row and TRIGGERED event, through the
    worker's own ``record_incident`` code (a run that starts from carried state has nothing
    unwritten, so it writes no row itself): the capacity table counts PostgreSQL's size.
    """
    numbers = await allocate_numbers(stack, len(deadlines))
    seeded: list[Seeded] = []
    pool: AsyncConnectionPool | None = None
    if tickets:
        pool = AsyncConnectionPool(stack.database_url, min_size=1, max_size=8, open=False)
        await pool.open()

    async def one(i: int, deadline: datetime) -> None:
        key = f"{prefix}-{i}"
        workflow_id = incident_workflow_id(ESCALATE_SERVICE, key)
        start = _start(stack, numbers[i], key, deadline)
        handle = await stack.client.start_workflow(
            IncidentWorkflow.run,
            start,
            id=workflow_id,
            task_queue=stack.task_queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.INCIDENT_STATUS, Status.TRIGGERED.value),
                    SearchAttributePair(sa.INCIDENT_SEVERITY, Severity.SEV3.value),
                    SearchAttributePair(sa.INCIDENT_SERVICE, ESCALATE_SERVICE),
                    SearchAttributePair(
                        sa.INCIDENT_PRIORITY, priority_for(Impact.MEDIUM, Urgency.MEDIUM).value
                    ),
                ]
            ),
        )
        if pool is not None:
            assert start.carried is not None
            snapshot = start.carried.model_copy(
                update={"workflow_id": workflow_id, "run_id": handle.result_run_id or ""}
            )
            await TicketActivities(pool).record_incident(
                RecordIncidentInput(snapshot=snapshot.summary(), events=snapshot.timeline)
            )
        seeded.append(Seeded(numbers[i], workflow_id, deadline))

    try:
        await gather_limited(concurrency, [one(i, d) for i, d in enumerate(deadlines)])
    finally:
        if pool is not None:
            await pool.close()
    if seeded:
        await settle(stack, seeded[-1].workflow_id)
    return seeded


async def backlog(stack: Stack) -> int:
    """Workflow tasks waiting on the incident task queue (the server's estimate)."""
    response = await stack.client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=stack.client.namespace,
            task_queue=TaskQueue(name=stack.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            report_stats=True,
        )
    )
    return int(response.stats.approximate_backlog_count)


async def settle(stack: Stack, last_started: str, within: float = 600.0) -> None:
    """Wait until the worker has taken every queued workflow task.

    Starts return once the server has them; each new incident's first workflow task (a
    sandbox for the run, the carried snapshot decoded) then waits in the task queue. A
    measurement taken before that backlog drains measures the backlog: at 10,000 seeded,
    escalation probes and repeats queued behind ~9,000 first tasks for two minutes. The
    backlog figure is a few seconds stale, so first the last incident started must have
    completed a workflow task (WorkflowExecutionStarted, WorkflowTaskScheduled, Started,
    Completed: four events).
    """
    last = stack.client.get_workflow_handle(last_started)

    async def drained() -> bool:
        return (await last.describe()).history_length >= 4 and await backlog(stack) == 0

    await wait_until(drained, within=within, interval=1.0, what="the workflow task backlog")


async def seed_rate(stack: Stack, count: int = 200) -> float:
    """Incidents seeded per second on this stack, their first workflow tasks taken (to
    schedule deadlines after seeding)."""
    far = now() + timedelta(hours=1)
    started = time.monotonic()
    done = await seed(stack, [far] * count, prefix=f"probe-{uuid.uuid4().hex[:6]}")
    rate = count / (time.monotonic() - started)
    await terminate(stack, done)
    return rate


async def collect(stack: Stack, seeded: list[Seeded], *, grace: float) -> Lateness:
    """Wait (up to ``grace`` seconds after the last deadline) for every level-2 notification."""
    by_number = {s.number: s for s in seeded}
    numbers = list(by_number)
    last_deadline = max(s.deadline for s in seeded)
    give_up = time.monotonic() + max(0.0, (last_deadline - now()).total_seconds()) + grace
    sent: dict[str, datetime] = {}
    while True:
        rows = await stack.rows(
            "SELECT number, max(sent_at) FROM notifications "
            "WHERE number = ANY(%s) AND seq = %s AND status = 'sent' GROUP BY number",
            numbers,
            ESCALATED_SEQ,
        )
        sent = {r[0]: r[1] for r in rows}
        if len(sent) == len(numbers) or time.monotonic() > give_up:
            break
        await asyncio.sleep(0.5)
    fired_rows = await stack.rows(
        "SELECT number, at FROM incident_events WHERE number = ANY(%s) AND seq = %s AND kind = %s",
        numbers,
        ESCALATED_SEQ,
        EventKind.ESCALATED.value,
    )
    notified = [(at - by_number[n].deadline).total_seconds() for n, at in sent.items()]
    fired = [(at - by_number[n].deadline).total_seconds() for n, at in fired_rows]
    first = min(s.deadline for s in seeded)
    drain = (max(sent.values()) - first).total_seconds() if sent else float("nan")
    return Lateness(notified, fired, len(numbers) - len(sent), drain)


async def terminate(stack: Stack, seeded: list[Seeded], concurrency: int = 64) -> None:
    """End seeded incidents (server side only, no worker task) so they stop counting."""

    async def one(s: Seeded) -> None:
        try:
            await stack.client.get_workflow_handle(s.workflow_id).terminate("benchmark done")
        except RPCError:
            pass  # already gone

    await gather_limited(concurrency, [one(s) for s in seeded])
