"""Bare workflows for the baselines: what this server and worker do with no incident logic.

Registered by the benchmark worker process (``bench.worker_proc``) on its own task queue,
beside the real worker, so baseline and scenario share the server, the process and the
tuning.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow


@workflow.defn
class BenchNoopWorkflow:
    """Starts and completes in one workflow task: the ingest baseline."""

    @workflow.run
    async def run(self) -> None:
        return None


@workflow.defn
class BenchTimerWorkflow:
    """One durable timer to an absolute instant, then completes: the escalation baseline."""

    @workflow.run
    async def run(self, until: datetime) -> datetime:
        wait = (until - workflow.now()).total_seconds()
        if wait > 0:
            await workflow.sleep(wait)
        return workflow.now()


RAW_WORKFLOWS = [BenchNoopWorkflow, BenchTimerWorkflow]
