"""The client commands of ``incidentflow``, by area.

- :mod:`starter.cli.ops`: ``api``, ``policy check``, ``version``;
- :mod:`starter.cli.incidents`: the responder commands (trigger, ack, show, list, ...);
- :mod:`starter.cli.reviews`: ``review …`` and ``action-items …``;
- :mod:`starter.cli.exports`: ``export`` (audit exports, streamed);
- :mod:`starter.cli.drills`: ``drill run SCENARIO.yaml`` (a scripted game day);
- :mod:`starter.cli.verify`: workflow state against ticket rows;
- :mod:`starter.cli.common`: exit codes (:class:`ExitCode`), :class:`CliError`, the consoles.

The ``incidentflow`` entry point is the composition root, ``launcher.cli``: it builds this
app and adds the commands that run the worker or the embedded stack (``dev``, ``worker``,
``migrate``). Heavy imports (Temporal, uvicorn, PostgreSQL drivers, httpx) happen inside the
commands, so ``--help`` and ``policy check`` are quick.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from starter.cli import drills, exports, incidents, ops, reviews, verify
from starter.cli.common import CliError, ExitCode, console, err_console

__all__ = ["CliError", "ExitCode", "app", "build_app", "console", "err_console"]


def build_app(first: Callable[[typer.Typer], None] | None = None) -> typer.Typer:
    """The ``incidentflow`` typer app; ``first`` registers commands listed before ours."""
    app = typer.Typer(
        name="incidentflow",
        help="Incident automation on Temporal: lifecycle, SLA clocks, escalation, tickets.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
    )
    if first is not None:
        first(app)
    ops.register(app)
    incidents.register(app)
    reviews.register(app, incidents.PANEL)
    drills.register(app, incidents.PANEL)
    exports.register(app, incidents.PANEL)
    verify.register(app)
    return app


#: the client commands alone (no worker, no embedded stack)
app = build_app()
