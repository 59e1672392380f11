"""``incidentflow drill run SCENARIO.yaml``: a scripted game day over the HTTP API.

Each alert of the scenario is sent at its offset as a drill (``drill: true``: marked DRILL,
paged per the policy's ``drills`` section, left out of reports); then the command watches
the incidents until every one is resolved or ``wait`` has passed, and prints the team's
times: to acknowledge, to mitigate and to resolve, per incident and on average.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.durations import Duration, parse_duration
from schemas.enums import Severity
from starter import time_text
from starter.cli.common import CliError, ExitCode
from starter.cli.incidents import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    _session,
)

if TYPE_CHECKING:
    from starter.cli.api_client import ApiClient
    from starter.cli.output import Output

drill_app = typer.Typer(
    help="Game days: play a scripted scenario of drill alerts and time the team.",
    no_args_is_help=True,
)


class DrillAlert(BaseModel):
    """One alert of a scenario, sent ``at`` after the start (``POST /api/v1/incidents``)."""

    model_config = ConfigDict(extra="forbid")

    at: Duration = timedelta(0)
    title: str = Field(min_length=1, max_length=1024)
    service: str | None = None
    description: str = ""
    severity: Severity | None = None
    #: alerts with one key share an incident (a repeat); generated when absent
    dedup_key: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class DrillScenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    #: each alert's service unless it names its own
    service: str | None = None
    #: after the last alert, how long the team has to resolve every drill
    wait: Duration = timedelta(hours=1)
    alerts: list[DrillAlert] = Field(min_length=1)


def load_scenario(path: Path) -> DrillScenario:
    """The scenario file as :class:`DrillScenario`; a usage error naming the field if not."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return DrillScenario.model_validate(data)
    except (OSError, yaml.YAMLError) as exc:
        raise CliError(f"{path}: {exc}", exit_code=ExitCode.USAGE) from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise CliError(
            f"{path}: {problems}",
            hint="see `incidentflow drill run --help`",
            exit_code=ExitCode.USAGE,
        ) from None


def _send(api: ApiClient, scenario: DrillScenario, alert: DrillAlert) -> dict[str, Any]:
    body = {
        "title": alert.title,
        "service": alert.service or scenario.service,
        "description": alert.description or None,
        "severity": alert.severity,
        "dedup_key": alert.dedup_key,
        "labels": {"drill_scenario": scenario.name, **alert.labels},
        "source": "drill",
        "drill": True,
    }
    ref: dict[str, Any] = api.post("/incidents", {k: v for k, v in body.items() if v})
    return ref


def _times(snapshot: dict[str, Any]) -> dict[str, float | None]:
    created = datetime.fromisoformat(snapshot["created_at"])

    def after(key: str) -> float | None:
        at = snapshot.get(key)
        return (datetime.fromisoformat(at) - created).total_seconds() if at else None

    return {
        "ack": after("acknowledged_at"),
        "mitigate": after("mitigated_at"),
        "resolve": after("resolved_at"),
    }


def _report(out: Output, snapshots: list[dict[str, Any]], as_json: bool) -> bool:
    """Print the team's times; True when every incident was resolved."""
    rows = []
    for snap in snapshots:
        rows.append(
            {
                "number": snap["number"],
                "title": snap["title"],
                "status": snap["status"],
                "commander": (snap.get("responders") or {}).get("commander"),
                **{f"{k}_seconds": v for k, v in _times(snap).items()},
            }
        )
    resolved = all(r["resolve_seconds"] is not None for r in rows)

    def mean(key: str) -> float | None:
        values = [r[key] for r in rows if r[key] is not None]
        return sum(values) / len(values) if values else None

    totals = {f"mean_{k}_seconds": mean(f"{k}_seconds") for k in ("ack", "mitigate", "resolve")}
    if as_json:
        out.json({"incidents": rows, **totals, "all_resolved": resolved})
        return resolved
    out.table(
        ["incident", "title", "status", "commander", "to ack", "to mitigate", "to resolve"],
        [
            [
                r["number"],
                r["title"],
                r["status"],
                r["commander"] or "—",
                time_text.maybe(r["ack_seconds"]),
                time_text.maybe(r["mitigate_seconds"]),
                time_text.maybe(r["resolve_seconds"]),
            ]
            for r in rows
        ],
        title="The team's times",
    )
    out.line(
        "mean:",
        f"ack {time_text.maybe(totals['mean_ack_seconds'])}",
        f"· mitigate {time_text.maybe(totals['mean_mitigate_seconds'])}",
        f"· resolve {time_text.maybe(totals['mean_resolve_seconds'])}",
    )
    if not resolved:
        open_ones = ", ".join(r["number"] for r in rows if r["resolve_seconds"] is None)
        out.err.print(f"not resolved in time: {open_ones}")
    return resolved


@drill_app.command("run")
def run(
    scenario_file: Annotated[
        Path,
        typer.Argument(
            metavar="SCENARIO.yaml",
            help="The game day: name, service, wait, and alerts (at, title, severity, …).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    speed: Annotated[
        float, typer.Option(min=0.01, help="Play the alerts' offsets this many times faster.")
    ] = 1.0,
    wait: Annotated[
        str | None,
        typer.Option(help="Override the scenario's wait (30m, 1h) for the team to resolve."),
    ] = None,
    poll: Annotated[float, typer.Option(min=0.1, help="Seconds between status checks.")] = 2.0,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Play SCENARIO.yaml: send its alerts as drills at their offsets, wait until the team
    resolved them (or the wait ran out), then print each incident's time to acknowledge,
    mitigate and resolve. Exit code 1 when some drill was not resolved in time.

    Example scenario:

    \b
    name: checkout game day
    service: checkout
    wait: 30m
    alerts:
      - {at: 0s, title: Checkout 5xx above 5%, severity: SEV2}
      - {at: 2m, title: Payment provider timeouts, service: payments}
    """
    from starter.cli.output import Output

    try:  # a broken scenario is refused before anything is sent
        scenario = load_scenario(scenario_file)
    except CliError as err:
        Output(as_json=as_json).error(err)
        raise typer.Exit(err.exit_code) from None
    with _session(url, token, as_json) as (api, out):
        limit = scenario.wait
        if wait is not None:
            parsed = parse_duration(wait)
            if not isinstance(parsed, timedelta):
                raise typer.BadParameter(
                    f"{wait!r} is not a duration (30m, 1h)", param_hint="--wait"
                )
            limit = parsed
        started = time.monotonic()
        numbers: list[str] = []
        for alert in sorted(scenario.alerts, key=lambda a: a.at):
            due = started + alert.at.total_seconds() / speed
            time.sleep(max(0.0, due - time.monotonic()))
            ref = _send(api, scenario, alert)
            if ref["number"] not in numbers:
                numbers.append(ref["number"])
            if not as_json:
                offset = time_text.short(time.monotonic() - started)
                out.line(f"[{offset}]", f"{ref['number']} DRILL", alert.title)
        deadline = time.monotonic() + limit.total_seconds()
        while True:
            snapshots = [api.get(f"/incidents/{n}") for n in numbers]
            done = all(s.get("resolved_at") for s in snapshots)
            if done or time.monotonic() >= deadline:
                break
            time.sleep(poll)
        if not _report(out, snapshots, as_json):
            raise typer.Exit(ExitCode.REJECTED)


def register(app: typer.Typer, panel: str) -> None:
    app.add_typer(drill_app, name="drill", rich_help_panel=panel)
