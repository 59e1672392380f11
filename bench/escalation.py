"""Scenario 2, escalation lateness: level-2 notification recorded - deadline.

- spread: N open incidents whose deadlines are spread evenly over 60 s: p50 / p99 / max;
- burst: N deadlines at one instant, drain time against N bare workflow timers due at one
  instant on the same server and worker (the raw timer rate is N / that drain time);
- sustained: the highest escalation rate (deadlines evenly spaced at r per second for a
  window) whose p99 lateness stays under 1 s, and its ratio to the raw timer rate.

Incidents are seeded with chosen deadlines (``bench.seed`` says how and why).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from bench.harness import Stack, gather_limited, load1, percentile
from bench.raw_workflows import BenchTimerWorkflow
from bench.report import Figure, ScenarioResult
from bench.seed import Lateness, collect, now, seed, seed_rate, terminate


@dataclass
class Trial:
    rate: float
    count: int
    lateness: Lateness

    @property
    def p99(self) -> float:
        return percentile(self.lateness.notified, 99)

    @property
    def passed(self) -> bool:
        return self.lateness.missing == 0 and self.p99 < 1.0


def _start_after(count: int, rate: float, margin: float = 8.0) -> datetime:
    """An instant safely after ``count`` incidents have been seeded at ``rate`` per second.

    The margin covers what does not scale with the count (number allocation, waiting for
    the task backlog to drain): with x1.4 + 3 s, trials of ~150 incidents overran their first
    deadline by up to 1.8 s, and a trial that overruns measures the seeding.
    """
    return now() + timedelta(seconds=count / rate * 1.3 + margin)


async def raw_timer_burst(
    stack: Stack, count: int, start_rate: float, *, activities: int = 0
) -> float:
    """Drain time (s) of ``count`` bare timers due at one instant, each then running
    ``activities`` no-op activities: the last workflow's final task (the time it saw) minus
    the instant."""
    prefix = f"timer-{uuid.uuid4().hex[:8]}"
    instant = _start_after(count, start_rate)

    async def start(i: int) -> object:
        return await stack.client.start_workflow(
            BenchTimerWorkflow.run,
            args=[instant, activities],
            id=f"{prefix}-{i}",
            task_queue=stack.raw_task_queue,
        )

    handles = await gather_limited(64, [start(i) for i in range(count)])
    woke: list[datetime] = await gather_limited(
        64,
        [h.result() for h in handles],
    )
    return (max(woke) - instant).total_seconds()


async def burst(stack: Stack, count: int, start_rate: float) -> Lateness:
    instant = _start_after(count, start_rate)
    seeded = await seed(stack, [instant] * count, prefix=f"burst-{uuid.uuid4().hex[:6]}")
    try:
        return await collect(stack, seeded, grace=120 + count / 5)
    finally:
        await terminate(stack, seeded)


async def evenly(stack: Stack, count: int, rate: float, start_rate: float) -> Lateness:
    """``count`` deadlines, one every ``1/rate`` seconds."""
    first = _start_after(count, start_rate)
    deadlines = [first + timedelta(seconds=i / rate) for i in range(count)]
    seeded = await seed(stack, deadlines, prefix=f"even-{uuid.uuid4().hex[:6]}")
    if now() > first:
        # seeding overran the first deadline: those escalations were late before they began
        late = (now() - first).total_seconds()
        print(f"    warning: seeding overran the first deadline by {late:.1f}s")
    try:
        return await collect(stack, seeded, grace=30)
    finally:
        await terminate(stack, seeded)


async def sustained(
    stack: Stack, *, raw_rate: float, window: float, start_rate: float, trials: int
) -> list[Trial]:
    """Search the highest rate with p99 < 1 s: grow x1.5 from a fifth of the raw timer rate
    until a trial fails, then bisect between the last pass and the first fail."""
    done: list[Trial] = []

    async def trial(rate: float) -> Trial:
        count = max(10, round(rate * window))
        result = Trial(rate, count, await evenly(stack, count, rate, start_rate))
        print(
            f"    {rate:6.1f}/s x {window:.0f}s: p99 {result.p99:.3f}s, "
            f"missing {result.lateness.missing} -> {'pass' if result.passed else 'fail'}"
        )
        done.append(result)
        await asyncio.sleep(2)  # let the last tasks settle before the next trial
        return result

    rate = max(2.0, round(raw_rate / 5))
    passed: float | None = None
    failed: float | None = None
    while len(done) < trials:
        if (await trial(rate)).passed:
            passed = rate
            if failed is None:
                rate = round(rate * 1.5, 1)
                continue
        else:
            failed = rate
            if passed is None:
                rate = max(1.0, round(rate / 2, 1))
                continue
        if passed is not None and failed is not None:
            if failed - passed <= max(2.0, passed * 0.1):
                break
            rate = round((passed + failed) / 2, 1)
    return done


def _lateness_figures(result: ScenarioResult, label: str, lateness: Lateness, load: float) -> None:
    goals = {50: ("", None), 99: ("< 1 s", 1.0), 100: ("< 2 s", 2.0)}
    for q, name in ((50, "p50"), (99, "p99"), (100, "max")):
        value = percentile(lateness.notified, q)
        goal, limit = goals[q]
        result.add(
            Figure(
                name=f"{label}: lateness {name} (notified)",
                value=value,
                unit="s",
                goal=goal,
                ok=None if limit is None else bool(value < limit and not lateness.missing),
                load=load,
            )
        )
    result.add(
        Figure(
            name=f"{label}: lateness p99 (timer fired)",
            value=percentile(lateness.fired, 99),
            unit="s",
            load=load,
        )
    )
    if lateness.missing:
        result.add(
            Figure(
                name=f"{label}: never notified",
                value=lateness.missing,
                unit="count",
                goal="0",
                ok=False,
                load=load,
            )
        )


async def run(
    stack: Stack,
    *,
    spread: int,
    spread_over: float,
    burst_count: int,
    window: float,
    trials: int,
) -> tuple[ScenarioResult, float]:
    """Returns the scenario and the raw timer rate (for other tables)."""
    result = ScenarioResult(key="escalation", title="2. Escalation lateness", server=stack.label)
    started = time.perf_counter()
    start_rate = await seed_rate(stack)

    load = load1()
    raw_drain = await raw_timer_burst(stack, burst_count, start_rate)
    raw_rate = burst_count / raw_drain
    raw_two = await raw_timer_burst(stack, burst_count, start_rate, activities=2)
    late = await burst(stack, burst_count, start_rate)
    result.add(
        Figure(
            name=f"burst: {burst_count:,} deadlines at one instant, drain (notified)",
            value=late.drain,
            unit="s",
            baseline=raw_two,
            baseline_name=(
                f"{burst_count:,} bare workflow timers due at one instant, each then running "
                "two no-op activities (an escalation's page and ticket write), same server and "
                "worker process"
            ),
            goal="≤ 1.1x baseline",
            ok=bool(late.drain <= 1.1 * raw_two and not late.missing),
            load=load,
        )
    )
    result.add(
        Figure(
            name="burst: drain (notified), against bare timers alone",
            value=late.drain,
            unit="s",
            baseline=raw_drain,
            baseline_name=(
                f"{burst_count:,} bare workflow timers due at one instant: raw timer rate "
                f"{raw_rate:.0f}/s"
            ),
            load=load,
        )
    )
    result.add(
        Figure(
            name="burst: drain (timer fired)",
            value=max(late.fired) if late.fired else None,
            unit="s",
            baseline=raw_drain,
            load=load,
        )
    )

    load = load1()
    late = await evenly(stack, spread, spread / spread_over, start_rate)
    _lateness_figures(result, f"spread: {spread:,} over {spread_over:.0f} s", late, load)

    load = load1()
    print(f"  sustained escalation rate search ({stack.label}):")
    found = await sustained(
        stack, raw_rate=raw_rate, window=window, start_rate=start_rate, trials=trials
    )
    best = max((t for t in found if t.passed), key=lambda t: t.rate, default=None)
    result.add(
        Figure(
            name=f"sustained escalations/s with p99 < 1 s ({window:.0f} s windows)",
            value=best.rate if best else 0.0,
            unit="/s",
            baseline=raw_rate,
            baseline_name="raw timer rate: the burst baseline's timers / drain time",
            load=load,
        )
    )
    tried = ", ".join(f"{t.rate:g}/s p99 {t.p99:.2f}s{'' if t.passed else ' ✗'}" for t in found)
    result.notes.append(f"sustained-rate trials: {tried}")
    result.seconds = time.perf_counter() - started
    return result, raw_rate
