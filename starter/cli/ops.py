"""The client-side process commands: ``api`` (serve the HTTP API and dashboard),
``policy check``, ``policy simulate`` and ``version``. The commands that run the worker or
the embedded stack (``dev``, ``worker``, ``migrate``) belong to the composition root,
``launcher.cli``.
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


# ---------------------------------------------------------------------------- policy simulate
@policy_app.command("simulate")
def policy_simulate(
    file: Annotated[Path, typer.Argument(help="The policy file to simulate.", show_default=False)],
    service: Annotated[str, typer.Option("--service", help="The incident's service.")],
    severity: Annotated[str, typer.Option("--severity", help="SEV1..SEV4.")],
    at: Annotated[
        str,
        typer.Option(
            "--at", help="When it triggers, with an offset: 2026-12-24T03:00+01:00 (or Z)."
        ),
    ],
    ack_after: Annotated[
        str | None, typer.Option("--ack-after", help="Acknowledged this long after: 20m.")
    ] = None,
    diff: Annotated[
        Path | None,
        typer.Option("--diff", help="Show what changed from this (older) policy file."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The plan(s) as JSON.")] = False,
) -> None:
    """Print, with no server, what the policy would do to one incident: who is paged at each
    level and when (rotations, overrides, calendars, repeats resolved), every SLA deadline in
    wall-clock and working time, and when the review would be booked. It runs the workflow's
    own rules on a simulated clock."""
    from datetime import datetime, timedelta

    from schemas.durations import parse_duration
    from schemas.enums import Severity
    from starter.cli.simulate import run

    try:
        level = Severity(severity.upper())
    except ValueError:
        raise typer.BadParameter("one of SEV1, SEV2, SEV3, SEV4", param_hint="--severity") from None
    try:
        start = datetime.fromisoformat(at.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{at!r}: write an instant like 2026-12-24T03:00+01:00", param_hint="--at"
        ) from None
    if start.tzinfo is None:
        raise typer.BadParameter("add a UTC offset, e.g. +01:00 or Z", param_hint="--at")
    ack: timedelta | None = None
    if ack_after is not None:
        parsed = parse_duration(ack_after)
        if not isinstance(parsed, timedelta) or parsed < timedelta(0):
            raise typer.BadParameter(
                f"{ack_after!r}: write a duration like 20m", param_hint="--ack-after"
            )
        ack = parsed
    policy = load_policy_or_exit(file)
    old = load_policy_or_exit(diff) if diff is not None else None
    if policy.service(service) is None:
        known = ", ".join(s.name for s in policy.services)
        raise typer.BadParameter(
            f"unknown service {service!r}; known: {known}", param_hint="--service"
        )
    if old is not None and old.service(service) is None:
        raise typer.BadParameter(f"{diff} has no service {service!r}", param_hint="--diff")
    text = run(
        policy, service=service, severity=level, at=start, ack_after=ack, old=old, as_json=as_json
    )
    typer.echo(text)


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
