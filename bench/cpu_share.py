"""Where an incident's CPU goes: CPU milliseconds per operation, by process, for the ingest
scenario and its two signal-with-start baselines, run ``--trials`` times in one stack.

    python -m bench.cpu_share                 # 3 trials of 1,000 operations each (~6 min)
    python -m bench.cpu_share --trials 1 --count 300

The ratios in ``make bench`` say how far the incident path is from bare Temporal; this says
which process pays for the difference. Every part shares the same cores, so a process that
spends more per operation slows all the others; the machine is saturated when the per-phase
CPU seconds approach cores x wall seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bench import ingest
from bench.harness import Postgres, Stack, cpu_seconds, load1, machine, open_stack, percentile

PROCESSES = ("temporal", "worker", "api", "postgres", "load generator")


def _sample(stack: Stack) -> dict[str, float]:
    return {
        "temporal": cpu_seconds(stack.server.pid),
        "worker": cpu_seconds(stack.worker.pid if stack.worker else None),
        "api": cpu_seconds(stack.api.pid if stack.api else None),
        "postgres": cpu_seconds(stack.postgres.pid),
        "load generator": time.process_time(),
        "wall": time.perf_counter(),
    }


@dataclass
class Phase:
    """One measured phase: operations, their rate, and CPU ms per operation by process."""

    name: str
    count: int
    rate: float
    latency: str
    cpu_ms: dict[str, float]
    wall: float

    def row(self) -> str:
        cells = " | ".join(f"{self.cpu_ms[p]:.1f}" for p in PROCESSES)
        total = sum(self.cpu_ms.values())
        return f"| {self.name} | {self.rate:.1f}/s | {self.latency} | {cells} | {total:.1f} |"


async def _measure(
    stack: Stack, name: str, count: int, run: Callable[[], Awaitable[tuple[float, str]]]
) -> Phase:
    before = _sample(stack)
    rate, latency = await run()
    after = _sample(stack)
    cpu = {p: 1000 * (after[p] - before[p]) / count for p in PROCESSES}
    return Phase(name, count, rate, latency, cpu, after["wall"] - before["wall"])


async def trial(stack: Stack, count: int) -> list[Phase]:
    async def bare() -> tuple[float, str]:
        timed, _ = await ingest.baseline_signal_with_start(stack, count)
        p50, p99 = (percentile(timed.latencies, q) * 1000 for q in (50, 99))
        return timed.rate, f"{p50:.0f} / {p99:.0f} ms"

    async def two_activities() -> tuple[float, str]:
        _, seconds = await ingest.baseline_signal_with_start(stack, count, activities=2)
        return count / seconds, "end to end"

    async def incidents() -> tuple[float, str]:
        done = await ingest.ingest(stack, count)
        p50, p99 = (percentile(done.timed.latencies, q) * 1000 for q in (50, 99))
        return done.timed.rate, f"{p50:.0f} / {p99:.0f} ms; {done.rate:.1f}/s end to end"

    return [
        await _measure(stack, "bare signal-with-start (accepts)", count, bare),
        await _measure(stack, "the same + two no-op activities", count, two_activities),
        await _measure(stack, "incidents over /v2/enqueue (accepts)", count, incidents),
    ]


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_share", description=__doc__)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--count", type=int, default=1000, help="operations per phase")
    args = parser.parse_args(argv)
    print(f"machine: {machine().tag()}; load {load1():.2f}")
    header = " | ".join(PROCESSES)
    print(f"| phase | rate | latency p50 / p99 | {header} | total |")
    print("|---|---|---|" + "---|" * (len(PROCESSES) + 1))
    workdir = Path(tempfile.mkdtemp(prefix="incidentflow-cpu-share-"))
    postgres = Postgres(workdir)
    await asyncio.to_thread(postgres.start)
    try:
        async with open_stack("memory", postgres, workdir / "memory") as stack:
            for _ in range(args.trials):
                for phase in await trial(stack, args.count):
                    print(phase.row(), flush=True)
    finally:
        await asyncio.to_thread(postgres.stop)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
