"""Scenario 4, capacity and growth: incidents held open at once (100 / 1,000 / 10,000).

They are opened over HTTP up to ``http_up_to`` and seeded beyond it (started at the
workflow's carried-state entry, ticket rows written by the worker's own code: HTTP ingest at
~20/s would spend 8 of ``make bench``'s 15 minutes reaching 10,000). At each size: worker,
API, Temporal server and PostgreSQL memory, the ticket database's size, acknowledge latency
and escalation lateness (a probe of escalations spread over a few seconds on top).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from bench import actions
from bench.escalation import evenly
from bench.harness import Stack, load1, percentile
from bench.ingest import Ingested, ingest
from bench.report import Figure, ScenarioResult
from bench.seed import now, seed


@dataclass
class Level:
    open: int
    ingest: Ingested | None
    memory: dict[str, float | None]
    db_mib: float
    ack_p50: float
    ack_p99: float
    late_p50: float
    late_p99: float
    late_max: float
    load: float
    acks: int
    escalations: int
    #: of ``open``, how many were seeded rather than opened over HTTP
    seeded: int = 0
    seed_rate: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Growth:
    """Grows the open-incident count of one stack step by step: an HTTP ingest up to
    ``http_up_to`` open, seeded incidents (escalation two hours away) beyond."""

    stack: Stack
    http_up_to: int | None = None
    open: int = 0
    seeded: int = 0
    #: incidents seeded per second on the last seeded step, first workflow tasks taken
    seed_rate: float | None = None
    ingests: list[Ingested] = field(default_factory=list)

    async def grow_to(self, total: int, clients: int = 64) -> Ingested | None:
        """Returns the HTTP ingest of this step (``None`` when it was all seeded)."""
        done = None
        if total <= self.open:
            return None
        over_http = total - self.open
        if self.http_up_to is not None:
            over_http = max(0, min(total, self.http_up_to) - self.open)
        if over_http:
            done = await ingest(self.stack, over_http, clients)
            self.open += done.timed.count - done.timed.errors
            self.ingests.append(done)
        if total > self.open:
            far = now() + timedelta(hours=2)
            count = total - self.open
            began = time.perf_counter()
            await seed(
                self.stack, [far] * count, prefix=f"open-{uuid.uuid4().hex[:6]}", tickets=True
            )
            self.seed_rate = count / (time.perf_counter() - began)
            self.open += count
            self.seeded += count
        return done


async def measure(
    growth: Growth,
    ingested: Ingested | None,
    *,
    acks: int,
    probe: int,
    probe_rate: float,
    start_rate: float,
) -> Level:
    stack = growth.stack
    await asyncio.sleep(2)  # let the last ticket writes and notifications finish
    load = load1()
    memory = stack.memory()
    db_mib = await stack.db_size() / 2**20
    pending = await actions.unacknowledged(stack)
    timed = await actions.acknowledge(stack, pending[:acks])
    late = await evenly(stack, probe, probe_rate, start_rate)
    return Level(
        open=growth.open,
        ingest=ingested,
        memory=memory,
        db_mib=db_mib,
        ack_p50=percentile(timed.latencies, 50) * 1000,
        ack_p99=percentile(timed.latencies, 99) * 1000,
        late_p50=percentile(late.notified, 50),
        late_p99=percentile(late.notified, 99),
        late_max=percentile(late.notified, 100),
        load=load,
        acks=len(timed.latencies),
        escalations=len(late.notified),
        seeded=growth.seeded,
        seed_rate=growth.seed_rate if ingested is None else None,
    )


def table(levels: list[Level], server: str, probe_rate: float) -> ScenarioResult:
    result = ScenarioResult(key="capacity", title="4. Capacity and growth", server=server)
    first = levels[0]
    for level in levels:
        mem = level.memory

        def add(
            name: str,
            value: float | None,
            unit: str,
            base: float | None,
            *,
            level: Level = level,
            **kw: object,
        ) -> None:
            result.add(
                Figure(
                    name=f"{level.open:,} open: {name}",
                    value=value,
                    unit=unit,
                    baseline=base if level is not first else None,
                    load=level.load,
                    **kw,
                )
            )

        worker = mem["worker"]
        add(
            "worker memory",
            worker,
            "MiB",
            first.memory["worker"],
            goal="< 1024 MiB" if level.open >= 10_000 else "",
            ok=(worker < 1024) if worker is not None and level.open >= 10_000 else None,
        )
        add("Temporal server memory", mem["temporal"], "MiB", first.memory["temporal"])
        add("PostgreSQL memory", mem["postgres"], "MiB", first.memory["postgres"])
        add("API memory", mem["api"], "MiB", first.memory["api"])
        add("PostgreSQL database size", level.db_mib, "MiB", first.db_mib)
        if level.ingest is not None:
            add(
                "ingest alerts/s on the way here",
                level.ingest.rate,
                "/s",
                first.ingest.rate if first.ingest else None,
            )
        if level.seed_rate is not None:
            add("new incidents/s seeded, first workflow task taken", level.seed_rate, "/s", None)
        add("acknowledge p50", level.ack_p50, "ms", first.ack_p50)
        add("acknowledge p99", level.ack_p99, "ms", first.ack_p99)
        add("escalation lateness p99", level.late_p99, "s", first.late_p99)
        add("escalation lateness max", level.late_max, "s", first.late_max)
    result.notes.append(
        "baseline column: the same figure at the smallest size, so the ratio is the growth"
    )
    for level in levels:
        if level.seeded:
            result.notes.append(
                f"{level.open:,} open: {level.open - level.seeded:,} opened over HTTP, "
                f"{level.seeded:,} seeded (workflow started at its carried-state entry, ticket "
                "row written by the worker's record_incident code)"
            )
    result.notes.append(
        f"memory is PSS (shared pages split between processes); per size: "
        f"{levels[0].acks} acknowledges from 16 responders, an escalation probe at "
        f"{probe_rate:g}/s on top of the open incidents"
    )
    return result


async def run(
    growth: Growth,
    *,
    sizes: list[int],
    acks: int,
    probe: int,
    probe_rate: float,
    start_rate: float,
    on_level: object = None,
) -> tuple[ScenarioResult, list[Level]]:
    started = time.perf_counter()
    levels: list[Level] = []
    for size in sizes:
        ingested = await growth.grow_to(size)
        level = await measure(
            growth,
            ingested,
            acks=min(acks, size // 2),
            probe=probe,
            probe_rate=probe_rate,
            start_rate=start_rate,
        )
        levels.append(level)
        print(
            f"  {level.open:,} open: worker {level.memory['worker']:.0f} MiB, "
            f"ack p99 {level.ack_p99:.0f} ms, lateness p99 {level.late_p99:.2f}s"
        )
        if callable(on_level):
            await on_level(level)
    result = table(levels, growth.stack.label, probe_rate)
    result.seconds = time.perf_counter() - started
    return result, levels
