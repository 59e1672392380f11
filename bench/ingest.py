"""Scenario 1, ingest: alerts per second over ``POST /v2/enqueue`` from 64 concurrent
clients with distinct dedup keys: answered (202, the fast path) and end to end (the incident
started and its first ticket row written). Baselines, in the same run on the same server
and worker process: bare signal-with-start (``USE_EXISTING``) of a workflow that completes
at once (the accept rate's), the same workflow running two no-op activities (end to end),
bare ``start_workflow`` and bare update-with-start (the old trigger protocol).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from temporalio.client import WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from bench.harness import Stack, load1, percentile, wait_until
from bench.policy import INGEST_SERVICE, INTEGRATION_KEYS
from bench.raw_workflows import BenchNoopWorkflow, BenchSignalWorkflow, BenchUpdateWorkflow
from bench.report import Figure, ScenarioResult


@dataclass
class Timed:
    """``count`` operations from ``clients`` concurrent callers: wall time and latencies."""

    count: int
    seconds: float
    latencies: list[float]
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else float("nan")


async def concurrently(
    count: int, clients: int, call: Callable[[int], Awaitable[bool]], *, rate: float | None = None
) -> Timed:
    """Run ``call(0..count-1)`` from ``clients`` concurrent loops; ``call`` says if it worked.

    With ``rate``, call ``i`` starts no earlier than ``i / rate`` seconds in (an offered
    load); without it each loop calls again as soon as its last call returned (saturation).
    """
    next_index = iter(range(count))
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()

    async def client() -> None:
        nonlocal errors
        for i in next_index:
            if rate is not None:
                wait = started + i / rate - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
            began = time.perf_counter()
            ok = await call(i)
            latencies.append(time.perf_counter() - began)
            errors += not ok

    await asyncio.gather(*(client() for _ in range(min(clients, count))))
    return Timed(count, time.perf_counter() - started, latencies, errors)


async def completed(handles: Sequence[WorkflowHandle[Any, Any]], clients: int) -> None:
    """Wait for the baseline's workflows to finish, ``clients`` at a time (so their tasks do
    not leak into the next measurement)."""
    sem = asyncio.Semaphore(clients)

    async def result(handle: WorkflowHandle[Any, Any]) -> None:
        async with sem:
            await handle.result()

    await asyncio.gather(*(result(h) for h in handles))


async def baseline_starts(stack: Stack, count: int, clients: int = 64) -> Timed:
    """Bare ``start_workflow`` of a no-op workflow; waits for them to complete afterwards
    (so their tasks do not leak into the next measurement)."""
    prefix = f"noop-{uuid.uuid4().hex[:8]}"
    handles = []

    async def start(i: int) -> bool:
        handles.append(
            await stack.client.start_workflow(
                BenchNoopWorkflow.run, id=f"{prefix}-{i}", task_queue=stack.raw_task_queue
            )
        )
        return True

    timed = await concurrently(count, clients, start)
    await completed(handles, clients)
    return timed


async def baseline_update_with_start(stack: Stack, count: int, clients: int = 64) -> Timed:
    """Bare update-with-start (``USE_EXISTING``) of a workflow that answers at once: what the
    trigger path costs before any incident logic, since the server does far more for it
    than for a start (it must wait for the workflow's answer)."""
    prefix = f"uws-{uuid.uuid4().hex[:8]}"

    async def call(i: int) -> bool:
        operation = WithStartWorkflowOperation(
            BenchUpdateWorkflow.run,
            id=f"{prefix}-{i}",
            task_queue=stack.raw_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        answer = await stack.client.execute_update_with_start_workflow(
            BenchUpdateWorkflow.hit, i, start_workflow_operation=operation
        )
        return bool(answer == i)

    return await concurrently(count, clients, call)


async def baseline_signal_with_start(
    stack: Stack,
    count: int,
    clients: int = 64,
    *,
    activities: int = 0,
    rate: float | None = None,
) -> tuple[Timed, float]:
    """Bare signal-with-start (``USE_EXISTING``) of :class:`BenchSignalWorkflow` running
    ``activities`` no-op activities: the calls, and the seconds until every workflow
    completed (the end-to-end baseline)."""
    prefix = f"sws-{uuid.uuid4().hex[:8]}"
    handles = []
    started = time.perf_counter()

    async def call(i: int) -> bool:
        handles.append(
            await stack.client.start_workflow(
                BenchSignalWorkflow.run,
                activities,
                id=f"{prefix}-{i}",
                task_queue=stack.raw_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                start_signal="hit",
                start_signal_args=[i],
            )
        )
        return True

    timed = await concurrently(count, clients, call, rate=rate)
    await completed(handles, clients)
    return timed, time.perf_counter() - started


#: an alert storm the server can carry: 100 alerts/s (6,000 a minute, fifty times the
#: per-key limit PagerDuty enforces), 500 of them, so latency is the path's, not a queue's
STORM_RATE = 100.0
STORM_ALERTS = 500


@dataclass
class Baselines:
    starts: Timed
    #: the update-with-start ceiling (None where not measured)
    updates: Timed | None = None
    #: bare signal-with-start: the fast path's accept-rate ceiling
    signals: Timed | None = None
    #: bare signal-with-start + two activities, completed per second: the end-to-end floor
    signal_workflows_rate: float | None = None
    #: bare signal-with-start at ``STORM_RATE`` offered: the storm latency's baseline
    signals_offered: Timed | None = None


async def baselines(stack: Stack, count: int, clients: int = 64) -> Baselines:
    starts = await baseline_starts(stack, count, clients)
    updates = await baseline_update_with_start(stack, max(count // 4, min(count, 50)), clients)
    signals, _ = await baseline_signal_with_start(stack, count, clients)
    _, seconds = await baseline_signal_with_start(stack, count, clients, activities=2)
    offered, _ = await baseline_signal_with_start(
        stack, min(count, STORM_ALERTS), clients, rate=STORM_RATE
    )
    return Baselines(starts, updates, signals, count / seconds, offered)


def enqueue_body(service: str, key: str, summary: str) -> dict[str, object]:
    return {
        "routing_key": INTEGRATION_KEYS[service],
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {"summary": summary, "source": "bench-host", "severity": "warning"},
    }


@dataclass
class Ingested:
    timed: Timed
    #: seconds until every ticket row was in PostgreSQL
    rows_seconds: float
    prefix: str

    @property
    def rate(self) -> float:
        return self.timed.count / self.rows_seconds


async def ingest(
    stack: Stack,
    count: int,
    clients: int = 64,
    prefix: str | None = None,
    *,
    rate: float | None = None,
) -> Ingested:
    """``count`` distinct alerts over HTTP (as fast as answered, or offered at ``rate`` per
    second); done when all are answered and all ticket rows exist. A non-202 answer counts
    as an error (and its row is not waited for)."""
    prefix = prefix or f"in-{uuid.uuid4().hex[:8]}"
    async with stack.http(clients) as http:

        async def post(i: int) -> bool:
            response = await http.post(
                "/v2/enqueue", json=enqueue_body(INGEST_SERVICE, f"{prefix}-{i}", f"alert {i}")
            )
            return response.status_code == 202

        started = time.perf_counter()
        timed = await concurrently(count, clients, post, rate=rate)
    expected = count - timed.errors

    async def rows_written() -> bool:
        n = await stack.scalar(
            "SELECT count(*) FROM incidents WHERE dedup_key LIKE %s", f"{prefix}-%"
        )
        return bool(n >= expected)

    await wait_until(rows_written, within=120 + count / 5, interval=0.1, what="ticket rows")
    return Ingested(timed, time.perf_counter() - started, prefix)


def errors_figure(name: str, errors: int, load: float) -> Figure:
    """Answers other than 202: the goal is none."""
    return Figure(name=name, value=errors, unit="count", goal="0", ok=errors == 0, load=load)


def table(
    server: str,
    bases: Baselines,
    done: Ingested,
    *,
    clients: int,
    load: float,
    storm: Ingested | None = None,
) -> ScenarioResult:
    result = ScenarioResult(key="ingest", title="1. Ingest over /v2/enqueue", server=server)
    base = bases.starts
    alerts = done.timed.count
    p99 = percentile(done.timed.latencies, 99) * 1000
    if bases.signals is not None:
        result.add(
            Figure(
                name=f"alerts/s answered 202 ({alerts:,} alerts, {clients} clients)",
                value=done.timed.rate,
                unit="/s",
                baseline=bases.signals.rate,
                baseline_name=(
                    f"bare signal-with-start (USE_EXISTING) of a workflow that completes at "
                    f"once, {bases.signals.count:,} calls from {clients} concurrent callers, "
                    "same server and worker process"
                ),
                goal="≥ 0.8x baseline",
                ok=done.timed.rate >= 0.8 * bases.signals.rate,
                load=load,
            )
        )
        result.add(
            Figure(
                name="request latency p99 (answered 202)",
                value=p99,
                unit="ms",
                baseline=percentile(bases.signals.latencies, 99) * 1000,
                goal="< 300 ms",
                ok=p99 < 300,
                load=load,
            )
        )
    if storm is not None and bases.signals_offered is not None:
        offered = bases.signals_offered
        for q in (50, 99):
            value = percentile(storm.timed.latencies, q) * 1000
            result.add(
                Figure(
                    name=(
                        f"storm of {storm.timed.count:,} alerts offered at {STORM_RATE:g}/s "
                        f"({clients} clients): latency p{q}"
                    ),
                    value=value,
                    unit="ms",
                    baseline=percentile(offered.latencies, q) * 1000,
                    baseline_name=(
                        f"bare signal-with-start (USE_EXISTING), {offered.count:,} calls offered "
                        f"at {STORM_RATE:g}/s from {clients} callers"
                    ),
                    goal="< 300 ms" if q == 99 else "",
                    ok=value < 300 if q == 99 else None,
                    load=load,
                )
            )
        result.add(errors_figure("storm: errors (non-202)", storm.timed.errors, load))
    if bases.signal_workflows_rate is not None:
        result.add(
            Figure(
                name="incidents/s end to end (started + ticket row)",
                value=done.rate,
                unit="/s",
                baseline=bases.signal_workflows_rate,
                baseline_name=(
                    "the same signal-with-start workflow running two no-op activities, "
                    "completed per second"
                ),
                goal="≥ 0.9x baseline",
                ok=done.rate >= 0.9 * bases.signal_workflows_rate,
                load=load,
            )
        )
    result.add(
        Figure(
            name="incidents/s end to end, against bare starts",
            value=done.rate,
            unit="/s",
            baseline=base.rate,
            baseline_name=(
                f"bare start_workflow of a no-op workflow, {base.count:,} starts from "
                f"{clients} concurrent starters"
            ),
            load=load,
        )
    )
    if bases.updates is not None:
        result.add(
            Figure(
                name="alerts/s, incident started + ticket row, against update-with-start",
                value=done.rate,
                unit="/s",
                baseline=bases.updates.rate,
                baseline_name=(
                    f"bare update-with-start of a workflow that answers at once, "
                    f"{bases.updates.count:,} calls from {clients} concurrent callers, same "
                    "server and worker process: the trigger protocol's own ceiling"
                ),
                load=load,
            )
        )
    for q in (50, 99):
        result.add(
            Figure(
                name=f"request latency p{q}",
                value=percentile(done.timed.latencies, q) * 1000,
                unit="ms",
                baseline=percentile(base.latencies, q) * 1000,
                load=load,
            )
        )
    result.add(errors_figure("errors (non-202)", done.timed.errors, load))
    return result


async def run(stack: Stack, *, alerts: int, baseline: int, clients: int = 64) -> ScenarioResult:
    """The scenario on its own: baseline, then ``alerts`` new incidents as fast as they are
    answered, then a storm at ``STORM_RATE`` (``min(baseline, STORM_ALERTS)`` more)."""
    started = time.perf_counter()
    bases = await baselines(stack, baseline, clients)
    load = load1()
    done = await ingest(stack, alerts, clients)
    storm = await ingest(stack, min(baseline, STORM_ALERTS), clients, rate=STORM_RATE)
    result = table(stack.label, bases, done, clients=clients, load=load, storm=storm)
    result.seconds = time.perf_counter() - started
    return result
