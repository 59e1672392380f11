"""Scenario 3, action latency: ``POST /api/v1/incidents/{n}/acknowledge`` from 16 concurrent
responders while N incidents are open (each incident acknowledged once).

The incidents were opened through the same API process (``bench.ingest``), as they are in
a deployment with one API; a second API replica would first look the number up in
visibility (a few ms more on its first action per incident).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import WorkflowHandle

from bench.harness import Stack, load1, percentile
from bench.ingest import Timed, completed, concurrently
from bench.policy import INGEST_SERVICE, RESPONDER_TOKEN
from bench.raw_workflows import BenchAckWorkflow
from bench.report import Figure, ScenarioResult

RESPONDERS = 16
#: offered acknowledges per second in the paced case
PACED_RATE = 10.0
#: quiet between two bursts, so each burst meets a settled system (its incidents' ticket
#: writes and the previous burst's tasks done)
BURST_GAP = 1.0


async def in_bursts(
    count: int, size: int, call: Callable[[int], Awaitable[bool]], *, gap: float = BURST_GAP
) -> Timed:
    """Run ``call(0..count-1)`` ``size`` at a time, all of a burst at once, waiting ``gap``
    seconds after each burst has been answered; the wall time excludes the gaps."""
    latencies: list[float] = []
    errors = 0
    busy = 0.0

    async def timed(i: int) -> None:
        nonlocal errors
        began = time.perf_counter()
        ok = await call(i)
        latencies.append(time.perf_counter() - began)
        errors += not ok

    for first in range(0, count, size):
        began = time.perf_counter()
        await asyncio.gather(*(timed(i) for i in range(first, min(first + size, count))))
        busy += time.perf_counter() - began
        await asyncio.sleep(gap)
    return Timed(count, busy, latencies, errors)


async def unacknowledged(stack: Stack, prefix: str | None = None) -> list[str]:
    """Numbers of triggered ingest incidents, oldest first (from the ticket store)."""
    rows = await stack.rows(
        "SELECT number FROM incidents WHERE service = %s AND status = 'triggered' "
        "AND (%s::text IS NULL OR dedup_key LIKE %s) ORDER BY number_seq",
        INGEST_SERVICE,
        prefix,
        f"{prefix}-%",
    )
    return [r[0] for r in rows if r[0] not in stack.acknowledged]


async def acknowledge(
    stack: Stack,
    numbers: list[str],
    responders: int = RESPONDERS,
    rate: float | None = None,
    *,
    bursts: bool = False,
) -> Timed:
    """Acknowledge each of ``numbers`` once (at ``rate`` per second, back to back, or with
    ``bursts`` ``responders`` at once); a non-200 answer counts as an error."""
    headers = {"Authorization": f"Bearer {RESPONDER_TOKEN}"}
    async with stack.http(responders) as http:

        async def ack(i: int) -> bool:
            response = await http.post(
                f"/api/v1/incidents/{numbers[i]}/acknowledge", headers=headers, json={}
            )
            if response.status_code != 200:
                return False
            stack.acknowledged.add(numbers[i])
            return True

        if bursts:
            return await in_bursts(len(numbers), responders, ack)
        return await concurrently(len(numbers), responders, ack, rate=rate)


async def baseline_updates(
    stack: Stack, count: int, responders: int = RESPONDERS, *, bursts: bool = False
) -> Timed:
    """``count`` bare Updates from ``responders`` back to back (or in bursts of
    ``responders`` at once), each to its own running
    :class:`BenchAckWorkflow` (started beforehand, not timed) straight through the Temporal
    client: the floor under an acknowledge on this server, with no HTTP, no API and no
    incident logic. Waits for the workflows to finish so their tasks do not leak onward."""
    prefix = f"ack-{uuid.uuid4().hex[:8]}"
    gate = asyncio.Semaphore(responders)

    async def start(i: int) -> WorkflowHandle[Any, Any]:
        async with gate:
            return await stack.client.start_workflow(
                BenchAckWorkflow.run, id=f"{prefix}-{i}", task_queue=stack.raw_task_queue
            )

    handles = await asyncio.gather(*(start(i) for i in range(count)))

    async def ack(i: int) -> bool:
        return bool(await handles[i].execute_update(BenchAckWorkflow.ack, i) == i)

    if bursts:
        timed = await in_bursts(count, responders, ack)
    else:
        timed = await concurrently(count, responders, ack)
    await completed(handles, responders)
    return timed


def latency_figures(
    result: ScenarioResult,
    timed: Timed,
    label: str,
    load: float,
    *,
    goals: bool = True,
    baseline: Timed | None = None,
    asked: str = "back to back",
) -> None:
    for q, goal, limit in ((50, "< 50 ms", 50.0), (99, "< 250 ms", 250.0)):
        value = percentile(timed.latencies, q) * 1000
        result.add(
            Figure(
                name=f"{label}acknowledge p{q}",
                value=value,
                unit="ms",
                baseline=percentile(baseline.latencies, q) * 1000 if baseline else None,
                baseline_name=(
                    f"bare Update (answered at once, then one no-op activity) to a running "
                    f"workflow, {baseline.count:,} from {RESPONDERS} callers {asked} "
                    "through the Temporal client: no HTTP, API or incident logic"
                    if baseline
                    else ""
                ),
                goal=goal if goals else "",
                ok=bool(value < limit) if goals else None,
                load=load,
            )
        )
    if timed.errors:
        result.add(
            Figure(
                name=f"{label}errors (non-200)",
                value=timed.errors,
                unit="count",
                goal="0",
                ok=False,
                load=load,
            )
        )


async def run(
    stack: Stack, *, open_incidents: int, acks: int, paced_rate: float = PACED_RATE
) -> ScenarioResult:
    """Four ways of asking: one responder alone (the latency a person sees on a quiet
    system), 16 responders at an offered ``paced_rate`` (an incident storm), 16 responders
    at once (a burst: everyone on the call presses Acknowledge together; repeated with a
    pause) and 16 responders back to back (saturation: latency is then queueing, 16 /
    throughput). The last two are measured against bare Updates asked the same way."""
    result = ScenarioResult(key="actions", title="3. Action latency over HTTP", server=stack.label)
    started = time.perf_counter()
    pending = await unacknowledged(stack)
    alone, paced = max(1, acks // 10), max(1, acks * 3 // 10)
    bursts_from = alone + paced
    # at least one burst; at tiny sizes, half of what is left (the rest back to back)
    burst = min(RESPONDERS * max(1, acks // 3 // RESPONDERS), max(1, (acks - bursts_from) // 2))
    batches = {
        "1 responder": (pending[:alone], 1, None, False),
        f"{RESPONDERS} responders at {paced_rate:g}/s": (
            pending[alone:bursts_from],
            RESPONDERS,
            paced_rate,
            False,
        ),
        f"{RESPONDERS} responders at once (bursts)": (
            pending[bursts_from : bursts_from + burst],
            RESPONDERS,
            None,
            True,
        ),
        f"{RESPONDERS} responders back to back": (
            pending[bursts_from + burst : acks],
            RESPONDERS,
            None,
            False,
        ),
    }
    for label, (numbers, responders, rate, bursts) in batches.items():
        if not numbers:
            continue
        compared = rate is None and responders > 1
        base = (
            await baseline_updates(stack, len(numbers), responders, bursts=bursts)
            if compared
            else None
        )
        load = load1()
        timed = await acknowledge(stack, numbers, responders, rate, bursts=bursts)
        asked = f"in bursts of {responders} at once" if bursts else "back to back"
        latency_figures(result, timed, f"{label}: ", load, baseline=base, asked=asked)
        if compared and not bursts:
            result.add(
                Figure(
                    name=f"{label}: acknowledges/s",
                    value=timed.rate,
                    unit="/s",
                    baseline=base.rate if base else None,
                    load=load,
                )
            )
    result.notes.append(
        f"{min(acks, len(pending)):,} incidents acknowledged once each, out of "
        f"{open_incidents:,} open; the incidents were opened through the same API process; "
        f"bursts: {RESPONDERS} requests sent together, {BURST_GAP:g} s apart"
    )
    result.seconds = time.perf_counter() - started
    return result
