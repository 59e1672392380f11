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
class BenchUpdateWorkflow:
    """Started by update-with-start, answers the update and completes in the same workflow
    task: the ceiling of the protocol the trigger path uses (one running run per key, and
    the caller gets an answer from the workflow)."""

    def __init__(self) -> None:
        self.answered = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.answered)

    @workflow.update
    async def hit(self, value: int) -> int:
        self.answered = True
        return value


@workflow.defn
class BenchTimerWorkflow:
    """One durable timer to an absolute instant, then completes: the escalation baseline."""

    @workflow.run
    async def run(self, until: datetime) -> datetime:
        wait = (until - workflow.now()).total_seconds()
        if wait > 0:
            await workflow.sleep(wait)
        return workflow.now()


RAW_WORKFLOWS = [BenchNoopWorkflow, BenchUpdateWorkflow, BenchTimerWorkflow]
