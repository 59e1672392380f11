"""``incidentflow export``: the audit exports of the HTTP API (``/api/v1/exports/…``, read
scope) to a file or stdout, with a progress bar on a terminal."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from starter.cli.incidents import (
    DEFAULT_URL,
    TokenOption,
    UrlOption,
    _session,
    report_params,
)

#: what to export -> (format -> the API's path)
PATHS: dict[str, dict[str, str]] = {
    "incidents": {"csv": "/exports/incidents.csv", "jsonl": "/exports/incidents.jsonl"},
    "events": {"csv": "/exports/events.csv"},
}


def export(
    what: Annotated[
        Literal["incidents", "events"],
        typer.Argument(help="incidents (CSV or JSON Lines) or events (every timeline, CSV)."),
    ] = "incidents",
    format: Annotated[
        Literal["csv", "jsonl"], typer.Option("--format", "-f", help="csv or jsonl.")
    ] = "csv",
    since: Annotated[
        str | None, typer.Option(help="Incidents created after: 7d, 4w, or a date.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Created before: a date.")] = None,
    service: Annotated[str | None, typer.Option(help="One service only.")] = None,
    severity: Annotated[str | None, typer.Option(help="One severity only (SEV1..SEV4).")] = None,
    include_drills: Annotated[
        bool, typer.Option("--include-drills", help="Export drills too.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here (default: stdout).", dir_okay=False),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Export incidents or their timelines for an audit, streamed: CSV (header row first) or
    JSON Lines; a progress bar on stderr when it is a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    path = PATHS[what].get(format)
    if path is None:
        raise typer.BadParameter(f"{what} export only as csv", param_hint="--format")
    params = report_params(since, until, service, include_drills)
    if severity:
        params["severity"] = severity.upper()
    with _session(url, token, False) as (api, out):
        with api.stream(path, params=params) as response:
            total = int(response.headers.get("x-export-rows") or 0)
            progress = Progress(
                TextColumn(f"exporting {what}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=out.err,
                disable=not out.err.is_terminal,
            )
            sink = output.open("wb") if output is not None else sys.stdout.buffer
            try:
                with progress:
                    task = progress.add_task("export", total=total)
                    header = format == "csv"
                    for chunk in response.iter_bytes():
                        sink.write(chunk)
                        lines = chunk.count(b"\n")
                        if header and lines:
                            lines, header = lines - 1, False
                        progress.advance(task, lines)
            finally:
                if output is not None:
                    sink.close()
                else:
                    sink.flush()
        if output is not None:
            out.err.print(f"{total} {what} rows written to {output}")


def register(app: typer.Typer, panel: str) -> None:
    app.command(rich_help_panel=panel)(export)
