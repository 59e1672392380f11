"""Bare workflows for the baselines: what this server and worker do with no incident logic.

Registered by the benchmark worker process (``bench.worker_proc``) on its own task queue,
beside the real worker, so baseline and scenario share the server, the process and the
tuning.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import activity, workflow


@activity.defn(name="bench_noop")
async def bench_noop(value: int) -> int:
    """An activity that does nothing: the baselines' stand-in for a ticket write or a page."""
    return value


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
    """One durable timer to an absolute instant, then ``activities`` no-op activities one
    after another (two: an escalation's page and ticket write), then completes: the
    escalation baselines."""

    @workflow.run
    async def run(self, until: datetime, activities: int = 0) -> datetime:
        wait = (until - workflow.now()).total_seconds()
        if wait > 0:
            await workflow.sleep(wait)
        for i in range(activities):
            await workflow.execute_activity(
                bench_noop, i, start_to_close_timeout=timedelta(seconds=30)
            )
        return workflow.now()


@workflow.defn
class BenchSignalWorkflow:
    """Started by signal-with-start (``USE_EXISTING``), as the integrations' fast path is;
    with ``activities`` it then runs that many no-op activities one after another (two: the
    floor of an incident's number + ticket write and its page), else completes at once."""

    def __init__(self) -> None:
        self.signalled = False

    @workflow.run
    async def run(self, activities: int) -> None:
        await workflow.wait_condition(lambda: self.signalled)
        for i in range(activities):
            await workflow.execute_activity(
                bench_noop, i, start_to_close_timeout=timedelta(seconds=30)
            )

    @workflow.signal
    def hit(self, value: int) -> None:
        self.signalled = True


@workflow.defn
class BenchAckWorkflow:
    """Open until acknowledged: the ``ack`` Update answers at once, then the run writes its
    "ticket" (one no-op activity) and completes. The acknowledge latency's baseline: what an
    Update to a running workflow costs on this server before any incident logic or HTTP."""

    def __init__(self) -> None:
        self.acked = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.acked)
        await workflow.execute_activity(bench_noop, 0, start_to_close_timeout=timedelta(seconds=30))

    @workflow.update
    async def ack(self, value: int) -> int:
        self.acked = True
        return value


RAW_WORKFLOWS = [
    BenchNoopWorkflow,
    BenchUpdateWorkflow,
    BenchTimerWorkflow,
    BenchSignalWorkflow,
    BenchAckWorkflow,
]
RAW_ACTIVITIES = [bench_noop]
