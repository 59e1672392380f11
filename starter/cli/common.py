"""What every command of ``incidentflow`` shares: exit codes, the error a command reports,
the consoles, the policy and log-level options. Light imports only (typer, rich): every
command module imports this at start-up."""

from __future__ import annotations

import logging
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from schemas.policy import Policy


class ExitCode(IntEnum):
    OK = 0
    #: the workflow refused the action (illegal transition); used by the incident commands
    REJECTED = 1
    #: bad usage or bad configuration (broken policy, missing setting, port in use)
    USAGE = 2
    #: a server is unreachable (Temporal, PostgreSQL, the HTTP API)
    UNREACHABLE = 3


class CliError(Exception):
    """A failure to report: message, what to do next, exit code, and the API's error body."""

    def __init__(
        self,
        message: str,
        *,
        exit_code: int,
        hint: str | None = None,
        status: int | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.hint = hint
        self.status = status
        self.body = body

    def as_json(self) -> dict[str, Any]:
        body = self.body if isinstance(self.body, dict) else {}
        return {
            "error": body.get("error") or ("unreachable" if self.status is None else "error"),
            "message": self.message,
            "details": body.get("details"),
            "status": self.status,
            "exit_code": self.exit_code,
            "hint": self.hint,
        }


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

LogLevel = Annotated[
    str,
    typer.Option(
        "--log-level",
        help="Level of incidentflow's own log lines (debug, info, warning, error).",
    ),
]


def load_policy_or_exit(path: Path) -> Policy:
    """The validated policy, or every error on stderr and exit code 2."""
    # lazy: pydantic and the policy models stay out of `--help`
    from schemas.policy_file import PolicyError, load_policy, policy_errors_text

    try:
        return load_policy(path)
    except PolicyError as err:
        err_console.print(policy_errors_text(err), markup=False, highlight=False)
        raise typer.Exit(ExitCode.USAGE) from None


def load_serving_policy(path: Path, *, allow_dev_credentials: bool) -> Policy:
    """The policy a production worker or API serves: the file must exist (the image ships
    none) and hold no published development credential (exit code 2 naming the entries)."""
    # lazy: pydantic and the policy models stay out of `--help`
    from schemas.dev_credentials import dev_credentials, dev_credentials_text

    if not path.exists():
        err_console.print(
            f"error: no policy file at {path} (INCIDENTFLOW_POLICY or --policy). Write one "
            "(examples/policy.production.yaml is a template) and mount it read-only, e.g. "
            "docker run -v $PWD/policy.yaml:/etc/incidentflow/policy.yaml:ro "
            "-e INCIDENTFLOW_POLICY=/etc/incidentflow/policy.yaml ...; "
            "check it first with `incidentflow policy check policy.yaml`",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(ExitCode.USAGE)
    loaded = load_policy_or_exit(path)
    found = dev_credentials(loaded)
    if found and not allow_dev_credentials:
        err_console.print(
            f"error: {dev_credentials_text(str(path), found)}", markup=False, highlight=False
        )
        raise typer.Exit(ExitCode.USAGE)
    return loaded


def policy_path(option: Path | None) -> Path:
    # lazy: pydantic-settings stays out of `--help`
    from schemas.settings import Settings

    return option if option is not None else Settings().incidentflow_policy


def configure_logging(level: str) -> None:
    """Rich log lines on a terminal; plain, greppable ones when the output goes to a file."""
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
