"""Scenario 5, repeats: one alert sent N times over ``POST /v2/enqueue`` (same dedup key,
8 concurrent senders). Every repeat is an update-with-start on the one open incident; the
history must stay bounded (the workflow continues-as-new when the server suggests it), and
the count must be exact, in the workflow and in the ticket row.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter

from bench.harness import Stack, load1, percentile, wait_until
from bench.ingest import concurrently, enqueue_body
from bench.policy import REPEAT_SERVICE
from bench.report import Figure, ScenarioResult
from schemas.enums import EventKind
from starter.client import incident_workflow_id
from workflows.incident import IncidentWorkflow

#: concurrent senders: under the server's limit of 10 in-flight updates per workflow
#: (``history.maxInFlightUpdates``); above it the client backs off and retries
SENDERS = 8
#: twice the server's default continue-as-new suggestion (4,096 events)
HISTORY_BOUND = 8192


async def run(stack: Stack, *, repeats: int, senders: int = SENDERS) -> ScenarioResult:
    result = ScenarioResult(key="repeats", title="5. Repeats of one alert", server=stack.label)
    started = time.perf_counter()
    key = f"repeat-{uuid.uuid4().hex[:8]}"
    workflow_id = incident_workflow_id(REPEAT_SERVICE, key)
    load = load1()
    #: non-202 answers by status and message, with when they came (s into the run)
    failures: Counter[str] = Counter()
    failed_at: list[float] = []
    began = time.perf_counter()
    async with stack.http(senders) as http:

        async def post(i: int) -> bool:
            response = await http.post(
                "/v2/enqueue", json=enqueue_body(REPEAT_SERVICE, key, "the same alert")
            )
            if response.status_code != 202:
                failures[f"{response.status_code} {response.text[:160]}"] += 1
                failed_at.append(time.perf_counter() - began)
            return response.status_code == 202

        timed = await concurrently(repeats, senders, post)

    handle = stack.client.get_workflow_handle(workflow_id)
    snapshot = await handle.query(IncidentWorkflow.state)

    async def ticket_caught_up() -> bool:
        count = await stack.scalar(
            "SELECT alert_count FROM incidents WHERE number = %s", snapshot.number
        )
        return count == repeats

    try:
        await wait_until(ticket_caught_up, within=60, what="ticket alert_count")
        ticket_count = repeats
    except TimeoutError:
        ticket_count = await stack.scalar(
            "SELECT alert_count FROM incidents WHERE number = %s", snapshot.number
        )
    runs = [wf async for wf in stack.client.list_workflows(f"WorkflowId = '{workflow_id}'")]
    current = await handle.describe()
    lengths = [wf.history_length for wf in runs if wf.run_id != current.run_id]
    lengths.append(current.history_length)
    coalesced = sum(
        int(e.details.get("count", 1))
        for e in snapshot.timeline
        if e.kind == EventKind.ALERT_REPEATED
    )

    result.add(
        Figure(
            name=f"time per repeat ({repeats:,} repeats, {senders} senders)",
            value=timed.seconds / repeats * 1000,
            unit="ms",
            load=load,
        )
    )
    result.add(Figure(name="repeats/s", value=timed.rate, unit="/s", load=load))
    for q in (50, 99):
        result.add(
            Figure(
                name=f"request latency p{q}",
                value=percentile(timed.latencies, q) * 1000,
                unit="ms",
                load=load,
            )
        )
    result.add(
        Figure(
            name="alert count in the workflow",
            value=snapshot.alert_count,
            unit="count",
            goal=f"= {repeats:,}",
            ok=snapshot.alert_count == repeats and coalesced == repeats - 1,
            load=load,
        )
    )
    result.add(
        Figure(
            name="alert count in the ticket row",
            value=ticket_count,
            unit="count",
            goal=f"= {repeats:,}",
            ok=ticket_count == repeats,
            load=load,
        )
    )
    result.add(Figure(name="runs (continue-as-new)", value=len(lengths), unit="count", load=load))
    result.add(
        Figure(
            name="largest history of one run (events)",
            value=max(lengths),
            unit="count",
            goal=f"< {HISTORY_BOUND:,}",
            ok=max(lengths) < HISTORY_BOUND,
            load=load,
        )
    )
    result.add(
        Figure(
            name="errors (non-202)",
            value=timed.errors,
            unit="count",
            goal="0",
            ok=timed.errors == 0,
            load=load,
        )
    )
    for failure, n in failures.most_common(3):
        result.notes.append(f"{n} answered {failure}")
    if failed_at:
        result.notes.append(
            "failures came at " + ", ".join(f"{t:.0f}" for t in sorted(failed_at)[:20]) + " s"
        )
    result.notes.append(
        f"timeline holds {len(snapshot.timeline)} events: repeats coalesce into one "
        f"alert_repeated event per run of repeats (count {coalesced:,})"
    )
    result.seconds = time.perf_counter() - started
    return result
