"""The benchmarks at tiny sizes, so their code does not rot between `make bench` runs.

Runs the real harness (worker and API as subprocesses) against the session's Temporal dev
server and PostgreSQL: ingest over /v2/enqueue with its baseline, a burst of seeded
escalations, acknowledges over HTTP and repeats of one alert. The figures themselves are
not judged here (this machine is busy running tests); what is checked is that every
scenario completes and reports what it measured, with exact counts where counts are exact.
"""

from __future__ import annotations

import json
import math
import tempfile
from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from bench import actions, cpu_share, ingest, repeats, report, seed
from bench.harness import Postgres, open_stack


def _figure(result: report.ScenarioResult, prefix: str) -> report.Figure:
    found = [f for f in result.figures if f.name.startswith(prefix)]
    assert found, f"no figure {prefix!r} in {[f.name for f in result.figures]}"
    return found[0]


async def test_bench_scenarios_run_at_tiny_sizes(
    temporal_env: WorkflowEnvironment, postgres_server: str
) -> None:
    address = temporal_env.client.service_client.config.target_host
    workdir = Path(tempfile.mkdtemp(prefix="bench-smoke-"))
    postgres = Postgres(workdir, url=postgres_server)
    async with open_stack("external", postgres, workdir, temporal_address=address) as stack:
        ingested = await ingest.run(stack, alerts=12, baseline=12, clients=4)
        for name in ("alerts/s answered 202", "incidents/s end to end (started"):
            rate = _figure(ingested, name)  # each against its signal-with-start baseline
            assert rate.value is not None and rate.value > 0
            assert rate.baseline is not None and rate.baseline > 0
        assert _figure(ingested, "errors").value == 0
        storm = _figure(ingested, "storm of 12 alerts offered at 100/s (4 clients): latency p99")
        assert storm.value is not None and storm.baseline is not None and storm.ok is not None
        assert _figure(ingested, "storm: errors").value == 0
        rows = await stack.scalar("SELECT count(*) FROM incidents WHERE service = 'bench-ingest'")
        assert rows == 24  # 12 as fast as answered, 12 offered at 100/s

        phases = await cpu_share.trial(stack, 6)
        assert [p.count for p in phases] == [6, 6, 6]
        for phase in phases:  # the external server is not ours to sample; the rest are
            assert phase.rate > 0 and phase.cpu_ms["worker"] > 0, phase
        assert phases[2].cpu_ms["api"] > 0 and phases[2].cpu_ms["postgres"] == 0  # not ours
        assert phases[2].row().startswith("| incidents over /v2/enqueue (accepts) |")

        deadline = seed.now() + timedelta(seconds=4)
        seeded = await seed.seed(stack, [deadline] * 5, prefix="smoke")
        late = await seed.collect(stack, seeded, grace=30)
        await seed.terminate(stack, seeded)
        assert late.missing == 0 and len(late.notified) == 5
        assert all(-0.5 < s < 30 for s in late.notified), late.notified
        assert math.isfinite(late.drain)

        acked = await actions.run(stack, open_incidents=30, acks=10)
        assert not [f for f in acked.figures if f.name.endswith("errors (non-200)")]
        for asked in ("1 responder", "16 responders at 10/s", "16 responders at once (bursts)"):
            assert _figure(acked, f"{asked}: acknowledge p50").value is not None
        assert _figure(acked, "16 responders back to back: acknowledges/s").baseline
        assert len(await actions.unacknowledged(stack)) == 20

        repeated = await repeats.run(stack, repeats=30, senders=4)
        assert _figure(repeated, "alert count in the workflow").value == 30
        assert _figure(repeated, "alert count in the ticket row").value == 30

    run = report.RunResult(
        started_at=seed.now(),
        quick=True,
        machine={"python": "3"},
        machine_tag="test",
        load_at_start=0.0,
        scenarios=[ingested, acked, repeated],
    )
    json_path, md_path = report.write(run, workdir / "results")
    assert json.loads(json_path.read_text())["scenarios"][0]["key"] == "ingest"
    assert "| figure | value | baseline | ratio | goal | machine |" in md_path.read_text()
