"""The benchmark's worker process: the production worker (``build_worker`` with the
``WORKER_*``/``DB_POOL_*`` settings from the environment) plus a worker for the bare baseline
workflows on ``BENCH_RAW_TASK_QUEUE``, same client, same tuning.

Run as ``python -m bench.worker_proc`` by ``bench.harness``: a process of its own, so the
worker has its own interpreter lock and the load generator does not slow it down (or the
other way round). Prints ``READY`` once both workers poll; stops on SIGTERM.
``BENCH_PROFILE=<file>`` profiles the process with pyinstrument (text report) while it runs;
``BENCH_WORKER_HOOK=module:function`` calls that function first (to try a change, e.g. a
monkeypatch of ``worker.main``, and measure it before anyone edits the real code).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path

from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.db import create_pool
from bench.profiling import profiled
from bench.raw_workflows import RAW_ACTIVITIES, RAW_WORKFLOWS
from schemas.connection import connect_temporal
from schemas.policy import Policy
from schemas.settings import Settings
from worker.main import RESTRICTIONS, WorkerTuning, build_worker

#: the baselines' workflow module passes through the sandbox as the incident workflows' do
#: (``worker.main.SANDBOX``): re-importing it for every baseline run cost ~10 ms of worker CPU
#: each (4.2 of 24 s in a profile), which made the baselines slower than what they measure
RAW_SANDBOX = SandboxedWorkflowRunner(
    restrictions=RESTRICTIONS.with_passthrough_modules("workflows", "bench")
)


async def serve(stop: asyncio.Event, policy: Policy) -> None:
    settings = Settings()
    assert settings.database_url, "DATABASE_URL must be set"
    tuning = WorkerTuning.from_settings(settings)
    client = await connect_temporal(settings)
    pool = await create_pool(
        settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    try:
        incidents = build_worker(client, pool=pool, policy=policy, settings=settings)
        raw = Worker(
            client,
            task_queue=os.environ["BENCH_RAW_TASK_QUEUE"],
            workflows=RAW_WORKFLOWS,
            activities=RAW_ACTIVITIES,
            workflow_runner=RAW_SANDBOX,
            max_cached_workflows=tuning.max_cached_workflows,
            max_concurrent_workflow_tasks=tuning.max_concurrent_workflow_tasks,
            max_concurrent_workflow_task_polls=tuning.workflow_task_pollers,
        )
        async with AsyncExitStack() as workers:
            await workers.enter_async_context(incidents)
            await workers.enter_async_context(raw)
            print("READY", flush=True)
            await stop.wait()
    finally:
        await pool.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    policy = Policy.model_validate_json(Path(os.environ["BENCH_POLICY"]).read_text())
    hook = os.environ.get("BENCH_WORKER_HOOK")
    if hook:
        module, _, name = hook.partition(":")
        getattr(importlib.import_module(module), name)()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await serve(stop, policy)

    with profiled():
        asyncio.run(run())


if __name__ == "__main__":
    main()
