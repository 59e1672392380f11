"""Scenario 1, ingest: alerts per second over ``POST /v2/enqueue`` from 64 concurrent
clients with distinct dedup keys, counted once the incident is started and its first ticket
row is written; baseline, in the same run: bare ``start_workflow`` of a no-op workflow from
64 concurrent starters on the same server and worker process.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from bench.harness import Stack, load1, percentile, wait_until
from bench.policy import INGEST_SERVICE, INTEGRATION_KEYS
from bench.raw_workflows import BenchNoopWorkflow, BenchUpdateWorkflow
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
    sem = asyncio.Semaphore(clients)

    async def result(handle: object) -> None:
        async with sem:
            await handle.result()  # type: ignore[attr-defined]

    await asyncio.gather(*(result(h) for h in handles))
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


@dataclass
class Baselines:
    starts: Timed
    #: the update-with-start ceiling (None where not measured)
    updates: Timed | None = None


async def baselines(stack: Stack, count: int, clients: int = 64) -> Baselines:
    starts = await baseline_starts(stack, count, clients)
    updates = await baseline_update_with_start(stack, max(count // 4, min(count, 50)), clients)
    return Baselines(starts, updates)


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
    stack: Stack, count: int, clients: int = 64, prefix: str | None = None
) -> Ingested:
    """``count`` distinct alerts over HTTP; done when all are answered and all ticket rows
    exist. A non-202 answer counts as an error (and its row is not waited for)."""
    prefix = prefix or f"in-{uuid.uuid4().hex[:8]}"
    async with stack.http(clients) as http:

        async def post(i: int) -> bool:
            response = await http.post(
                "/v2/enqueue", json=enqueue_body(INGEST_SERVICE, f"{prefix}-{i}", f"alert {i}")
            )
            return response.status_code == 202

        started = time.perf_counter()
        timed = await concurrently(count, clients, post)
    expected = count - timed.errors

    async def rows_written() -> bool:
        n = await stack.scalar(
            "SELECT count(*) FROM incidents WHERE dedup_key LIKE %s", f"{prefix}-%"
        )
        return bool(n >= expected)

    await wait_until(rows_written, within=120 + count / 5, interval=0.1, what="ticket rows")
    return Ingested(timed, time.perf_counter() - started, prefix)


def table(
    server: str, bases: Baselines, done: Ingested, *, clients: int, load: float
) -> ScenarioResult:
    result = ScenarioResult(key="ingest", title="1. Ingest over /v2/enqueue", server=server)
    base = bases.starts
    alerts = done.timed.count
    baseline_name = (
        f"bare start_workflow of a no-op workflow, {base.count:,} starts from {clients} "
        "concurrent starters, same server and worker process"
    )
    result.add(
        Figure(
            name=f"alerts/s, incident started + ticket row ({alerts:,} alerts, {clients} clients)",
            value=done.rate,
            unit="/s",
            baseline=base.rate,
            baseline_name=baseline_name,
            goal="≥ 0.8x baseline",
            ok=done.rate >= 0.8 * base.rate,
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
    result.add(
        Figure(
            name="alerts/s answered 202",
            value=done.timed.rate,
            unit="/s",
            baseline=base.rate,
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
    result.add(
        Figure(
            name="errors (non-202)",
            value=done.timed.errors,
            unit="count",
            goal="0",
            ok=done.timed.errors == 0,
            load=load,
        )
    )
    return result


async def run(stack: Stack, *, alerts: int, baseline: int, clients: int = 64) -> ScenarioResult:
    """The scenario on its own: baseline, then ``alerts`` new incidents."""
    started = time.perf_counter()
    bases = await baselines(stack, baseline, clients)
    load = load1()
    done = await ingest(stack, alerts, clients)
    result = table(stack.label, bases, done, clients=clients, load=load)
    result.seconds = time.perf_counter() - started
    return result
