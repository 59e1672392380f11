"""The client-side process commands: ``api`` (serve the HTTP API and dashboard),
``policy check`` and ``version``. The commands that run the worker or the embedded stack
(``dev``, ``worker``, ``migrate``) belong to the composition root, ``launcher.cli``.
"""

from __future__ import annotations

import asyncio
import signal
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from starter.cli.common import (
    ExitCode,
    LogLevel,
    PolicyOption,
    configure_logging,
    console,
    load_policy_or_exit,
    load_serving_policy,
    policy_path,
)
from starter.cli.dev_connection import (
    DEFAULT_DATA_DIR,
    DataDirOption,
    dev_credentials_allowed,
    settings_with_dev_stack,
)

if TYPE_CHECKING:
    from schemas.policy_holder import PolicyHolder
    from schemas.settings import Settings

policy_app = typer.Typer(help="Work with the policy file.", no_args_is_help=True)


# ---------------------------------------------------------------------------- api
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
    settings = settings_with_dev_stack(data_dir)
    loaded = load_serving_policy(
        policy_path(policy), allow_dev_credentials=dev_credentials_allowed(data_dir)
    )
    configure_logging(log_level)
    from schemas.policy_holder import PolicyHolder, no_dev_credentials  # lazy: not for --help

    holder = PolicyHolder(
        loaded,
        path=policy_path(policy),
        check=None if settings.incidentflow_allow_dev_credentials else no_dev_credentials,
    )
    raise typer.Exit(asyncio.run(_serve_api(settings, holder, host, port)))


async def _serve_api(settings: Settings, policy: PolicyHolder, host: str, port: int) -> int:
    # lazy: uvicorn, FastAPI and the Temporal client load only when the API is served
    import uvicorn

    from starter.api.app import create_app
    from starter.api.server import QuietServer

    config = uvicorn.Config(
        create_app(settings, policy),
        host=host,
        port=port,
        # in-flight requests get this long after SIGTERM (API_SHUTDOWN_GRACE_SECONDS)
        # typed int by uvicorn, awaited with asyncio.wait_for: a float is honoured as given
        timeout_graceful_shutdown=settings.api_shutdown_grace_seconds,  # type: ignore[arg-type]
    )
    server = QuietServer(config)
    # SIGHUP: validate the policy file again and swap it in (a broken one is logged, kept out)
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, policy.reload_quietly)
    try:
        await server.serve_until_signal()
    except SystemExit:  # uvicorn exits when it cannot bind; it has logged why
        return ExitCode.USAGE
    return ExitCode.OK if server.started else ExitCode.UNREACHABLE


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
        f"{len(loaded.channels)} channels, {len(loaded.classification)} classification rules, "
        f"{len(loaded.calendars)} calendars, {len(loaded.heartbeats)} heartbeats",
        highlight=False,
    )


# ---------------------------------------------------------------------------- version
def version() -> None:
    """Print the version of incidentflow and of the Temporal SDK it runs on."""
    console.print(
        f"incidentflow {metadata.version('incidentflow')} "
        f"(temporalio {metadata.version('temporalio')})",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(api)
    app.add_typer(policy_app, name="policy")
    app.command()(version)
