"""``make bench``: every scenario on the in-memory dev server (optionally also on the
``--db-filename`` one), printed as tables and written to ``bench/results/latest.{json,md}``.

    python -m bench.run_all                 # the full run (~15 min on 2 cores)
    python -m bench.run_all --quick         # a smoke run at tiny sizes (< 2 min)
    python -m bench.run_all --servers memory,file   # also the SQLite-file server (+5 min)
    python -m bench.run_all --only ingest,repeats
    python -m bench.run_all --worker-env WORKER_MAX_CACHED_WORKFLOWS=5000   # try a tuning
    python -m bench.run_all --profile /tmp/prof   # pyinstrument reports of worker and API

Waits (up to ``--wait-quiet`` minutes) for the 1-minute load average to drop under 1.5
before starting, since figures taken while something else loads the machine measure that
something else; if it never does, the run goes ahead and says "measured under load".
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from bench import actions, capacity, escalation, ingest, repeats
from bench.harness import Postgres, ServerKind, Stack, load1, machine, open_stack
from bench.report import RESULTS, RunResult, ScenarioResult, print_scenario, write
from bench.seed import seed_rate

SCENARIOS = ("ingest", "escalation", "actions", "capacity", "repeats")
QUIET_LOAD = 1.5


@dataclasses.dataclass(frozen=True)
class Sizes:
    baseline_starts: int
    capacity: tuple[int, ...]
    #: open incidents at which ingest and action latency are measured (one of ``capacity``)
    at: int
    actions: int
    capacity_acks: int
    probe: int
    probe_rate: float
    spread: int
    spread_over: float
    burst: int
    window: float
    trials: int
    repeats: int


FULL = Sizes(
    baseline_starts=1000,
    capacity=(100, 1000, 10_000),
    at=1000,
    actions=200,
    capacity_acks=200,
    probe=100,
    probe_rate=20.0,
    spread=2000,
    spread_over=60.0,
    burst=1000,
    window=10.0,
    trials=2,
    repeats=10_000,
)
#: ``--servers memory,file``: the SQLite-backed server runs timers at a third of the
#: in-memory rate (BENCHMARKS.md), so it gets sizes that take ~5 minutes
FILE = dataclasses.replace(
    FULL,
    at=300,
    actions=150,
    spread=300,
    spread_over=60.0,
    burst=300,
)
QUICK = Sizes(
    baseline_starts=200,
    capacity=(20, 100, 300),
    at=100,
    actions=40,
    capacity_acks=10,
    probe=30,
    probe_rate=10.0,
    spread=100,
    spread_over=10.0,
    burst=100,
    window=4.0,
    trials=2,
    repeats=300,
)
#: on the SQLite-backed server: the same scenarios except the 10,000-incident growth and the
#: 10,000 repeats (both measure the worker, which the in-memory run already covers)
FILE_SCENARIOS = ("ingest", "escalation", "actions")


async def wait_for_quiet(console: Console, minutes: float) -> bool:
    """True when the load average is under QUIET_LOAD (now or within ``minutes``)."""
    deadline = time.monotonic() + minutes * 60
    while True:
        load = load1()
        if load < QUIET_LOAD:
            return True
        if time.monotonic() >= deadline:
            return False
        console.print(f"[yellow]load average {load:.2f} ≥ {QUIET_LOAD}: waiting 30 s[/yellow]")
        await asyncio.sleep(30)


async def run_server(
    stack: Stack, sizes: Sizes, only: set[str], console: Console, tag: str
) -> list[ScenarioResult]:
    out: list[ScenarioResult] = []

    def show(result: ScenarioResult) -> None:
        out.append(result)
        print_scenario(console, result, tag)

    if "escalation" in only:
        console.print(f"[bold]escalation[/bold] on {stack.label}")
        result, _ = await escalation.run(
            stack,
            spread=sizes.spread,
            spread_over=sizes.spread_over,
            burst_count=sizes.burst,
            window=sizes.window,
            trials=sizes.trials,
        )
        show(result)

    if not only & {"ingest", "actions", "capacity"}:
        pass
    else:
        growth = capacity.Growth(stack, http_up_to=sizes.at)
        base = None
        if "ingest" in only:
            console.print(f"[bold]ingest[/bold] on {stack.label}")
            base = await ingest.baselines(stack, sizes.baseline_starts)
        start_rate = await seed_rate(stack, 100) if "capacity" in only else 0.0
        levels: list[capacity.Level] = []
        sizes_to = sorted(set(sizes.capacity if "capacity" in only else ()) | {sizes.at})
        for size in sizes_to:
            load = load1()
            done = await growth.grow_to(size)
            if size == sizes.at and base is not None and done is not None:
                # then a storm the server can carry: latency at an offered rate
                storm = await ingest.ingest(
                    stack,
                    min(sizes.baseline_starts, ingest.STORM_ALERTS),
                    64,
                    rate=ingest.STORM_RATE,
                )
                growth.open += storm.timed.count - storm.timed.errors
                show(ingest.table(stack.label, base, done, clients=64, load=load, storm=storm))
            if "capacity" in only and size in sizes.capacity:
                console.print(f"[bold]capacity[/bold]: measuring at {growth.open:,} open")
                levels.append(
                    await capacity.measure(
                        growth,
                        done,
                        acks=min(sizes.capacity_acks, size // 2),
                        probe=sizes.probe,
                        probe_rate=sizes.probe_rate,
                        start_rate=start_rate,
                    )
                )
            if size == sizes.at and "actions" in only:
                console.print(f"[bold]actions[/bold] at {growth.open:,} open")
                show(await actions.run(stack, open_incidents=growth.open, acks=sizes.actions))
        if levels:
            show(capacity.table(levels, stack.label, sizes.probe_rate))

    if "repeats" in only:
        console.print(f"[bold]repeats[/bold] on {stack.label}")
        show(await repeats.run(stack, repeats=sizes.repeats))
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.run_all",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes, in-memory server only")
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    p.add_argument(
        "--servers",
        default="memory",
        help="memory and/or file (the --db-filename server, what make run gives; +5 min)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=None,
        help="minutes to wait for load < 1.5 first (default 10; quick 0)",
    )
    p.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of the worker process (WORKER_*, DB_POOL_*)",
    )
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="directory for pyinstrument reports of the worker and API processes",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="where latest.json/md go")
    p.add_argument("--stem", default="latest", help="file name stem of the results")
    return p.parse_args(argv)


async def main(argv: list[str] | None = None) -> RunResult:
    args = parse(argv)
    console = Console(width=max(140, shutil.get_terminal_size().columns))
    sizes = QUICK if args.quick else FULL
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
    servers: list[ServerKind] = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not servers or set(servers) - {"memory", "file"}:
        raise SystemExit(f"--servers takes memory and/or file, not {args.servers!r}")
    worker_env = dict(kv.split("=", 1) for kv in args.worker_env)
    info = machine()
    quiet = await wait_for_quiet(
        console, args.wait_quiet if args.wait_quiet is not None else (0 if args.quick else 10)
    )
    run = RunResult(
        started_at=datetime.now(UTC),
        quick=args.quick,
        machine=dataclasses.asdict(info),
        machine_tag=info.tag(),
        load_at_start=load1(),
        measured_under_load=not quiet,
        settings=worker_env,
    )
    console.print(
        f"machine: {info.tag()}, Python {info.python}, temporalio {info.temporalio}, "
        f"Temporal CLI {info.temporal_cli}; load {run.load_at_start:.2f}"
        + (" — [red]measured under load[/red]" if run.measured_under_load else "")
    )
    workdir = Path(tempfile.mkdtemp(prefix="incidentflow-bench-"))
    postgres = Postgres(workdir)
    await asyncio.to_thread(postgres.start)
    try:
        for kind in servers:
            kind_only = only if kind == "memory" else only & set(FILE_SCENARIOS)
            profile: dict[str, dict[str, str]] = {"worker": {}, "api": {}}
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                for proc in profile:
                    profile[proc]["BENCH_PROFILE"] = str(args.profile / f"{proc}-{kind}.txt")
            async with open_stack(
                kind,
                postgres,
                workdir / kind,
                worker_env={**worker_env, **profile["worker"]},
                api_env=profile["api"],
            ) as stack:
                kind_sizes = sizes if args.quick or kind == "memory" else FILE
                run.scenarios += await run_server(stack, kind_sizes, kind_only, console, info.tag())
                run.finished_at = datetime.now(UTC)
                write(run, args.out, args.stem)
    finally:
        await asyncio.to_thread(postgres.stop)
        shutil.rmtree(workdir, ignore_errors=True)
    run.finished_at = datetime.now(UTC)
    json_path, md_path = write(run, args.out, args.stem)
    console.print(f"wrote {json_path} and {md_path} ({run.seconds / 60:.1f} min)")
    return run


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
