"""Parts for the reliability drills: processes we can kill, stop and restart for real.

* :class:`WorkerProcess`: ``incidentflow worker`` (the console script) as a subprocess;
  ready once Temporal lists it among the task queue's pollers, killable with SIGKILL.
* :func:`drill_temporal`: a Temporal dev server of our own, its state in a db file, so it
  can be stopped (SIGTERM) and started again on the same port without touching the session
  server other tests use.
* :func:`drill_postgres`: an embedded PostgreSQL in a temp dir, halted (``pg_ctl stop``) and
  resumed on the same socket, so a URL taken before the outage works after.
* :func:`fresh_database`: a migrated database of its own, so ``verify`` sees exactly the rows
  of one drill.
* :func:`drill_policy_yaml`: a seconds-scale policy file for the worker subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from activities.db import create_pool
from schemas.policy import Policy
from schemas.settings import Settings
from starter.api.app import create_app
from starter.cli.verify import VerifyReport, verify
from tests.conftest import wait_for
from tests.support_api import serve
from tests.support_receivers import HttpReceiver
from worker import devinfra
from worker.main import build_worker

INCIDENTFLOW = Path(sys.executable).parent / "incidentflow"
DELIVERY_HEADER = "X-Incidentflow-Delivery"
#: scales the wall-clock bounds of timing assertions (``TEST_TIME_SCALE=3`` on a loaded host)
TIME_SCALE = float(os.environ.get("TEST_TIME_SCALE", "1"))


# ---------------------------------------------------------------------------- policy
def drill_policy_yaml(
    *,
    users: Sequence[dict[str, Any]],
    level_delay: str = "3s",
    ack_within: str = "120s",
    mitigate_within: str = "300s",
    resolve_within: str = "600s",
    repeat: int = 0,
) -> str:
    """One service ``checkout`` whose escalation pages ``users`` one level each, in order."""
    severity = {
        "ack_within": ack_within,
        "mitigate_within": mitigate_within,
        "resolve_within": resolve_within,
    }
    document = {
        "base_url": "http://incidents.test",
        "users": list(users),
        "escalation_policies": [
            {
                "name": "drill",
                "repeat": repeat,
                "levels": [{"targets": [f"user:{u['name']}"], "delay": level_delay} for u in users],
            }
        ],
        "severities": {sev: dict(severity) for sev in ("SEV1", "SEV2", "SEV3", "SEV4")},
        "services": [{"name": "checkout", "escalation_policy": "drill", "reopen_window": "1h"}],
    }
    return yaml.safe_dump(document, sort_keys=False)


# ---------------------------------------------------------------------------- databases
def fresh_database(server_url: str) -> contextlib.AbstractContextManager[str]:
    """A new migrated database on ``server_url``, dropped afterwards."""
    return devinfra.fresh_database(server_url, "incidentflow_drill")


def drill_postgres() -> devinfra.EmbeddedPostgres:
    """An embedded PostgreSQL only this drill uses (:meth:`~devinfra.EmbeddedPostgres.halt`
    and ``resume`` keep its socket path, so a URL taken before the outage works after)."""
    return devinfra.EmbeddedPostgres.temporary("incidentflow-drill-pg-")


class ReceiverOnPort(HttpReceiver):
    """An :class:`HttpReceiver` on a chosen port that binds only in :meth:`start`: until
    then a URL to it is refused, as a receiver that is down would be."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self._server.server_close()  # the ephemeral port the base class bound
        self.port = port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ReceiverOnPort:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self


# ---------------------------------------------------------------------------- processes
def _clean_env() -> dict[str, str]:
    drop = ("DATABASE_URL", "INCIDENTFLOW_POLICY", "INCIDENTFLOW_BASE_URL")
    return {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("TEMPORAL_", "SMTP_"))
    }


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "<no log>"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class WorkerProcess:
    """``incidentflow worker`` with its settings in the environment; output to ``log``."""

    def __init__(
        self,
        *,
        temporal_address: str,
        task_queue: str,
        database_url: str,
        policy: Path,
        log: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.env = _clean_env() | {
            "TEMPORAL_ADDRESS": temporal_address,
            "TEMPORAL_NAMESPACE": "default",
            "TEMPORAL_TASK_QUEUE": task_queue,
            "DATABASE_URL": database_url,
            "INCIDENTFLOW_POLICY": str(policy),
            **(extra_env or {}),
        }
        self.task_queue = task_queue
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> WorkerProcess:
        with self.log.open("ab") as out:
            out.write(f"--- worker starting at {time.ctime()}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [str(INCIDENTFLOW), "worker", "--log-level", "info"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_polling(self, temporal: Client, *, within: float = 30.0) -> None:
        """Until Temporal lists this process among the queue's workflow and activity pollers."""

        async def polling() -> bool:
            if not self.alive():
                raise AssertionError(f"worker exited early:\n{log_tail(self.log)}")
            identity = f"{self.pid}@"
            for kind in (
                TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            ):
                response = await temporal.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace=temporal.namespace,
                        task_queue=TaskQueue(name=self.task_queue),
                        task_queue_type=kind,
                    )
                )
                if not any(p.identity.startswith(identity) for p in response.pollers):
                    return False
            return True

        await wait_for(polling, timeout=within, interval=0.2, message="worker polling")

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup, as a crashed host would."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait (graceful drain); SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def drill_temporal(directory: Path) -> devinfra.TemporalDevServer:
    """``temporal server start-dev`` of our own, persisted in ``directory``: stopped and
    started again on the same state without touching the session server other tests use."""
    port = devinfra.free_port()
    return devinfra.TemporalDevServer(
        devinfra.dev_server_argv(port, db_filename=directory / "temporal.db", log_level="error"),
        address=f"127.0.0.1:{port}",
        log_path=directory / "temporal.log",
    )


async def fetch_all(database_url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(sql.encode(), params or None)
        return list(await cur.fetchall())


# ---------------------------------------------------------------------------- assertions
async def assert_verified(
    temporal: Client, database_url: str, task_queue: str, *, settle: float = 20.0
) -> VerifyReport:
    """``verify`` over the drill's database and task queue finds no drift."""
    report = await verify(temporal, database_url, task_queue=task_queue, settle=settle)
    problems = [f"{d.number} {d.kind.value}: {d.detail}" for d in report.drift + report.unverified]
    assert report.clean, "verify found drift:\n" + "\n".join(problems[:30])
    assert report.checked > 0
    return report


def deliveries_per_key(receiver: HttpReceiver) -> Counter[str]:
    """How many requests arrived per notification key (``X-Incidentflow-Delivery``)."""
    return Counter(r.header(DELIVERY_HEADER) or "" for r in receiver.requests())


@contextlib.asynccontextmanager
async def running_worker(worker: WorkerProcess, temporal: Client) -> AsyncIterator[WorkerProcess]:
    """Start ``worker``, wait until it polls, stop it at the end whatever happened."""
    worker.start()
    try:
        await worker.wait_polling(temporal)
        yield worker
    finally:
        worker.stop()


async def terminate_all(temporal: Client, task_queue: str) -> None:
    """Terminate the drill's still-running workflows so they do not outlive the test."""
    query = f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
    ids = [wf.id async for wf in temporal.list_workflows(query)]
    gate = asyncio.Semaphore(32)

    async def one(workflow_id: str) -> None:
        async with gate:
            with contextlib.suppress(Exception):
                await temporal.get_workflow_handle(workflow_id).terminate("drill finished")

    await asyncio.gather(*(one(i) for i in ids))


# ---------------------------------------------------------------------------- API + worker
@contextlib.asynccontextmanager
async def api_with_worker(
    temporal: Client, policy: Policy, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API (in-process, lifespan run) over a worker with ``settings`` (SMTP and
    all), for end-to-end scenarios whose notifications must really go out."""
    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, max_size=5)
    try:
        worker = build_worker(
            temporal,
            pool=pool,
            policy=policy,
            settings=settings,
            task_queue=settings.temporal_task_queue,
        )
        async with worker:
            app = create_app(settings, policy, temporal=temporal)
            async with serve(app) as http:
                yield http
    finally:
        await pool.close()
