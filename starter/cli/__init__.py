"""The ``incidentflow`` command: process commands (dev, worker, api, migrate), policy check.

The responder commands (trigger, ack, show, list, ...) talk to the HTTP API and live in
``starter.cli_incidents``; that module exposes ``register(app)`` and is picked up by
:func:`_register_incident_commands` at the bottom of this file.

Exit codes scripts can rely on: see :class:`ExitCode`. Heavy imports (Temporal, the worker,
PostgreSQL drivers) happen inside the commands, so ``--help`` and ``policy check`` are quick.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import signal
from collections.abc import Iterator
from enum import IntEnum
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from starter.dev_connection import DEFAULT_DATA_DIR, DataDirOption

if TYPE_CHECKING:
    from schemas.policy import Policy
    from schemas.settings import Settings


class ExitCode(IntEnum):
    OK = 0
    #: the workflow refused the action (illegal transition); used by the incident commands
    REJECTED = 1
    #: bad usage or bad configuration (broken policy, missing setting, port in use)
    USAGE = 2
    #: a server is unreachable (Temporal, PostgreSQL, the HTTP API)
    UNREACHABLE = 3


app = typer.Typer(
    name="incidentflow",
    help="Incident automation on Temporal: lifecycle, SLA clocks, escalation, tickets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
policy_app = typer.Typer(help="Work with the policy file.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        help="Policy file (YAML). Defaults to $INCIDENTFLOW_POLICY, else examples/policy.yaml.",
        show_default=False,
    ),
]


def load_policy_or_exit(path: Path) -> Policy:
    """The validated policy, or every error on stderr and exit code 2."""
    from schemas.policy_file import PolicyError, load_policy, policy_errors_text

    try:
        return load_policy(path)
    except PolicyError as err:
        err_console.print(policy_errors_text(err), markup=False, highlight=False)
        raise typer.Exit(ExitCode.USAGE) from None


def _policy_path(option: Path | None) -> Path:
    from schemas.settings import Settings

    return option if option is not None else Settings().incidentflow_policy


def _configure_logging(level: str) -> None:
    """Rich log lines on a terminal; plain, greppable ones when the output goes to a file."""
    import logging

    handler: logging.Handler
    if err_console.is_terminal:
        from rich.logging import RichHandler

        handler = RichHandler(console=err_console, show_path=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("incidentflow").setLevel(level.upper())


LogLevel = Annotated[
    str,
    typer.Option(
        "--log-level",
        help="Level of incidentflow's own log lines (debug, info, warning, error).",
    ),
]


# ---------------------------------------------------------------------------- dev
@app.command()
def dev(
    data_dir: Annotated[
        Path,
        typer.Option(help="Where Temporal (temporal.db), PostgreSQL (pg/) and logs keep data."),
    ] = Path(".data"),
    api_port: Annotated[int, typer.Option(help="Port of the HTTP API and dashboard.")] = 8000,
    temporal_port: Annotated[int, typer.Option(help="gRPC port of the Temporal server.")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Port of the Temporal web UI.")] = 8233,
    host: Annotated[str, typer.Option(help="Address every server binds to.")] = "127.0.0.1",
    policy: PolicyOption = None,
    log_level: LogLevel = "info",
) -> None:
    """Run everything on this machine: Temporal dev server, PostgreSQL, worker and API.

    Data persists in --data-dir, so the next start finds every incident where it was.
    PostgreSQL is embedded unless DATABASE_URL is set. Ctrl-C stops everything.
    """
    policy_path = _policy_path(policy)
    loaded = load_policy_or_exit(policy_path)
    _configure_logging(log_level)
    from worker.dev import DevOptions, run_dev

    options = DevOptions(
        data_dir=data_dir,
        host=host,
        api_port=api_port,
        temporal_port=temporal_port,
        ui_port=ui_port,
        policy=policy_path,
    )
    raise typer.Exit(asyncio.run(run_dev(options, loaded, console)))


# ---------------------------------------------------------------------------- worker
@app.command()
def worker(
    policy: PolicyOption = None,
    log_level: LogLevel = "info",
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
) -> None:
    """Run a worker: polls Temporal for incident workflows and activities until SIGTERM.

    Configured by the environment: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, DATABASE_URL,
    INCIDENTFLOW_POLICY, TLS / API-key options; what it leaves unset comes from a running
    `incidentflow dev` in --data-dir. Runs the migrations first.
    """
    from starter.dev_connection import settings_with_dev_stack

    settings = settings_with_dev_stack(data_dir)
    loaded = load_policy_or_exit(_policy_path(policy))
    if not settings.database_url:
        err_console.print(
            "error: DATABASE_URL is not set (the worker writes tickets there) and no "
            f"`incidentflow dev` stack left its connection info in {data_dir}"
        )
        raise typer.Exit(ExitCode.USAGE)
    _configure_logging(log_level)
    raise typer.Exit(asyncio.run(_run_worker(settings, loaded)))


async def _run_worker(settings: Settings, policy: Policy) -> int:
    import psycopg

    from worker.main import run_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_worker(settings, policy, stop)
    except psycopg.OperationalError as err:
        err_console.print(f"error: PostgreSQL unreachable: {err}")
        return ExitCode.UNREACHABLE
    except RuntimeError as err:
        if "connect" not in str(err).lower():
            raise
        err_console.print(f"error: Temporal unreachable at {settings.temporal_address}: {err}")
        return ExitCode.UNREACHABLE
    return ExitCode.OK


# ---------------------------------------------------------------------------- api
@app.command()
def api(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    policy: PolicyOption = None,
    log_level: LogLevel = "info",
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
) -> None:
    """Serve the HTTP API and dashboard (uvicorn) against TEMPORAL_ADDRESS and DATABASE_URL
    (or, where unset, those of a running `incidentflow dev` in --data-dir).

    SIGINT/SIGTERM stop accepting connections and finish in-flight requests.
    """
    from starter.dev_connection import settings_with_dev_stack

    settings = settings_with_dev_stack(data_dir)
    loaded = load_policy_or_exit(_policy_path(policy))
    _configure_logging(log_level)
    raise typer.Exit(asyncio.run(_serve_api(settings, loaded, host, port)))


async def _serve_api(settings: Settings, policy: Policy, host: str, port: int) -> int:
    import uvicorn

    from starter.api.app import create_app

    class Server(uvicorn.Server):
        """uvicorn without its own signal handling, which re-raises the signal at exit
        (the process would die of SIGTERM instead of exiting 0)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(
        create_app(settings, policy),
        host=host,
        port=port,
        # in-flight requests get this long after SIGTERM (API_SHUTDOWN_GRACE_SECONDS)
        # typed int by uvicorn, awaited with asyncio.wait_for: a float is honoured as given
        timeout_graceful_shutdown=settings.api_shutdown_grace_seconds,  # type: ignore[arg-type]
    )
    server = Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, setattr, server, "should_exit", True)
    try:
        await server.serve()
    except SystemExit:  # uvicorn exits when it cannot bind; it has logged why
        return ExitCode.USAGE
    return ExitCode.OK if server.started else ExitCode.UNREACHABLE


# ---------------------------------------------------------------------------- migrate
@app.command()
def migrate(
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar="DATABASE_URL",
            help="PostgreSQL URL (default: $DATABASE_URL, else the dev stack's).",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
) -> None:
    """Apply pending SQL migrations to the ticket store; running it twice is a no-op."""
    if not database_url:
        from starter.dev_connection import read_connection

        dev = read_connection(data_dir)
        database_url = dev.database_url if dev else None
    if not database_url:
        err_console.print(
            "error: no database: set DATABASE_URL, pass --database-url, or start "
            f"`incidentflow dev` (none left its connection info in {data_dir})"
        )
        raise typer.Exit(ExitCode.USAGE)
    from worker.dev import Unreachable, migrate_database

    try:
        applied = migrate_database(database_url)
    except Unreachable as err:
        err_console.print(f"error: {err}", markup=False)
        raise typer.Exit(ExitCode.UNREACHABLE) from None
    if applied:
        for version in applied:
            console.print(f"applied {version}")
    else:
        console.print("up to date: no pending migrations")


# ---------------------------------------------------------------------------- policy check
@policy_app.command("check")
def policy_check(
    file: Annotated[Path, typer.Argument(help="The policy file to validate.", show_default=False)],
) -> None:
    """Validate a policy file without starting anything; lists every error (exit 2)."""
    loaded = load_policy_or_exit(file)
    console.print(
        f"OK: {len(loaded.services)} services, {len(loaded.schedules)} schedules, "
        f"{len(loaded.escalation_policies)} escalation policies, "
        f"{len(loaded.severities)} severities, {len(loaded.users)} users, "
        f"{len(loaded.channels)} channels, {len(loaded.classification)} classification rules",
        highlight=False,
    )


# ---------------------------------------------------------------------------- version
@app.command()
def version() -> None:
    """Print the version of incidentflow and of the Temporal SDK it runs on."""
    console.print(
        f"incidentflow {metadata.version('incidentflow')} "
        f"(temporalio {metadata.version('temporalio')})",
        highlight=False,
    )


# ---------------------------------------------------------------------------- extensions
def _register_incident_commands() -> None:
    """Add the responder commands when ``starter.cli_incidents`` (``register(app)``) exists."""
    if importlib.util.find_spec("starter.cli_incidents") is None:
        return
    from starter import cli_incidents

    cli_incidents.register(app)


_register_incident_commands()


def _register_verify_command() -> None:
    """``incidentflow verify`` (workflow state vs ticket rows) lives in ``starter.verify``."""
    from starter.verify import register

    register(app)


_register_verify_command()
