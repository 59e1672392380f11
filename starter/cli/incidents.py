"""The responder commands of ``incidentflow``: they talk to the HTTP API, never to Temporal.

``register(app)`` adds them to the typer app (``starter.cli.build_app``). Every command takes
``--url``/``--token`` (or ``INCIDENTFLOW_URL``/``INCIDENTFLOW_TOKEN``) and ``--json``, and
exits 0 ok, 1 rejected (409/422/404), 2 usage, 3 unreachable (see ``starter.cli.api_client``).
Imports of httpx, rich tables and the schemas happen inside the commands so ``--help`` stays
fast.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from schemas.enums import Action, ComponentStatus, StatusPhase
from starter import time_text
from starter.cli.common import CliError

if TYPE_CHECKING:
    from schemas.incident import IncidentSnapshot
    from starter.cli.api_client import ApiClient
    from starter.cli.output import Output

UrlOption = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="INCIDENTFLOW_URL",
        help="Base URL of the incidentflow API.",
        rich_help_panel="Connection",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="INCIDENTFLOW_TOKEN",
        help="API token (from the policy file).",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
Number = Annotated[str, typer.Argument(help="Incident number, e.g. INC-42.", show_default=False)]
DEFAULT_URL = "http://127.0.0.1:8000"
#: the help panel of the responder commands (the review commands join it)
PANEL = "Incidents"
NUMBER_RE = re.compile(r"^(?:INC-)?([1-9][0-9]{0,17})$", re.IGNORECASE)


# ---------------------------------------------------------------------------- plumbing
def _number(value: str) -> str:
    """``42``, ``inc-42`` and ``INC-42`` all name INC-42; anything else is a usage error."""
    match = NUMBER_RE.match(value.strip())
    if not match:
        raise typer.BadParameter(f"{value!r} is not an incident number (e.g. INC-42)")
    return f"INC-{match.group(1)}"


@contextmanager
def _session(url: str, token: str | None, as_json: bool) -> Iterator[tuple[ApiClient, Output]]:
    """An API client and an output; a :class:`CliError` becomes its message and exit code."""
    # lazy, as every import of httpx, pydantic models and rich tables here: `--help` stays quick
    from starter.cli.api_client import ApiClient
    from starter.cli.output import Output

    out = Output(as_json=as_json)
    try:
        with ApiClient(url, token) as api:
            yield api, out
    except CliError as err:
        out.error(err)
        raise typer.Exit(err.exit_code) from None


def _since(value: str | None, name: str = "--since") -> str | None:
    """``7d``, ``24h``, ``30m``, ``2w`` ago, or an ISO date/time (UTC when no offset)."""
    if not value:
        return None
    match = re.fullmatch(r"(\d+)\s*([mhdw])", value.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        delta = {
            "m": timedelta(minutes=amount),
            "h": timedelta(hours=amount),
            "d": timedelta(days=amount),
            "w": timedelta(weeks=amount),
        }[unit]
        return (datetime.now(UTC) - delta).isoformat()
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: use a duration ago (30m, 24h, 7d, 2w) or an ISO date", param_hint=name
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


def _labels(values: list[str] | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r}: write labels as key=value", param_hint="--label")
        labels[key.strip()] = value.strip()
    return labels


def _act(
    url: str,
    token: str | None,
    as_json: bool,
    number: str,
    action: Action,
    body: dict[str, Any],
    verb: str,
) -> None:
    """POST one action (to its route in ``schemas.actions.ACTION_SPECS``) and print the
    incident's new state."""
    from schemas.actions import ACTION_SPECS
    from schemas.incident import IncidentSnapshot
    from starter.cli.output import snapshot_summary

    spec = ACTION_SPECS[action]
    number = _number(number)
    payload = {k: v for k, v in body.items() if v is not None}
    with _session(url, token, as_json) as (api, out):
        path = f"/incidents/{number}/{spec.route}"
        data = api.request(spec.method, path, json=payload or None, number=number).json()
        if as_json:
            out.json(data)
            return
        snapshot = IncidentSnapshot.model_validate(data)
        snapshot_summary(out, snapshot, verb)
        if action == Action.RESOLVE:
            _offer_children(api, out, snapshot)


def _offer_children(api: ApiClient, out: Output, parent: IncidentSnapshot) -> None:
    """After resolving a parent, name its children still open and how to resolve each: an
    offer, never done by itself."""
    from schemas.enums import LinkKind
    from schemas.lifecycle import OPEN_STATUSES

    for link in parent.incident_links:
        if link.kind != LinkKind.PARENT_OF:
            continue
        child = api.get(f"/incidents/{link.number}")
        if child.get("status") in {s.value for s in OPEN_STATUSES}:
            out.line(
                f"{link.number} ({child['status']}) is a child of {parent.number}:",
                f"`incidentflow resolve {link.number}` resolves it too",
            )


# ---------------------------------------------------------------------------- commands
def trigger(
    title: Annotated[
        str | None, typer.Argument(help="What is wrong (omit with --from-file).")
    ] = None,
    service: Annotated[
        str | None, typer.Option("--service", "-s", help="Service (else from rules).")
    ] = None,
    severity: Annotated[str | None, typer.Option(help="SEV1..SEV4 (else derived).")] = None,
    description: Annotated[str, typer.Option(help="Longer description.")] = "",
    dedup_key: Annotated[
        str | None, typer.Option("--dedup-key", help="Alerts with one key share an incident.")
    ] = None,
    impact: Annotated[str | None, typer.Option(help="high, medium or low.")] = None,
    urgency: Annotated[str | None, typer.Option(help="high, medium or low.")] = None,
    category: Annotated[str | None, typer.Option(help="software, hardware, network, …")] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="key=value (repeatable).")
    ] = None,
    drill: Annotated[
        bool,
        typer.Option("--drill", help="A drill: marked DRILL, paged per the policy's drills."),
    ] = False,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file",
            help="Bulk import: a JSONL file, one incident body (as POST /api/v1/incidents "
            "takes) per line.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open an incident (or count an alert against the open one with its dedup key)."""
    if from_file is not None:
        if title:
            raise typer.BadParameter("give a TITLE or --from-file, not both")
        _bulk_trigger(from_file, url, token, as_json)
        return
    if not title:
        raise typer.BadParameter("TITLE is required (or --from-file)", param_hint="TITLE")
    body = {
        "title": title,
        "service": service,
        "severity": severity.upper() if severity else None,
        "description": description or None,
        "dedup_key": dedup_key,
        "impact": impact,
        "urgency": urgency,
        "category": category,
        "labels": _labels(label) or None,
        "drill": True if drill else None,
    }
    with _session(url, token, as_json) as (api, out):
        data = api.post("/incidents", {k: v for k, v in body.items() if v is not None})
        if as_json:
            out.json(data)
            return
        if data.get("created"):
            out.ok(f"{data['number']} opened ({data.get('status', 'triggered')})")
        elif data.get("reopened"):
            out.ok(f"{data['number']} reopened")
        else:
            out.ok(f"attached to {data['number']} (alert count {data.get('alert_count')})")


def _bulk_trigger(path: Path, url: str, token: str | None, as_json: bool) -> None:
    """One POST per line with a progress bar; rate limits are waited out, not failed."""
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    lines = [(i, line) for i, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    results: list[dict[str, Any]] = []
    with _session(url, token, as_json) as (api, out):
        progress = Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            console=out.err,
            disable=not out.err.is_terminal,
        )
        with progress:
            task = progress.add_task("import", total=len(lines))
            for lineno, line in lines:
                try:
                    body = json.loads(line)
                    if not isinstance(body, dict):
                        raise ValueError("not a JSON object")
                except ValueError as exc:
                    results.append({"line": lineno, "ok": False, "message": f"bad JSON: {exc}"})
                    progress.advance(task)
                    continue
                try:
                    data = api.post("/incidents", body, retry_rate_limit=120.0)
                    results.append({"line": lineno, "ok": True, **data})
                except CliError as err:
                    if err.exit_code == 3 and err.status in (None, 503):
                        raise  # the API is gone: stop, do not fail every remaining line
                    results.append({"line": lineno, "ok": False, "message": err.message})
                progress.advance(task)
        failed = [r for r in results if not r["ok"]]
        created = sum(1 for r in results if r["ok"] and r.get("created"))
        attached = sum(1 for r in results if r["ok"] and not r.get("created"))
        if as_json:
            out.json(
                {
                    "created": created,
                    "attached": attached,
                    "failed": len(failed),
                    "results": results,
                }
            )
        else:
            out.ok(
                f"{len(lines)} lines: {created} opened, {attached} attached, {len(failed)} failed"
            )
            for r in failed:
                out.err.print(f"line {r['line']}: {r['message']}", markup=False, highlight=False)
    if failed:
        raise typer.Exit(1)


def _simple_action(action: Action, verb: str, field: str, help_text: str) -> Callable[..., None]:
    def command(
        number: Number,
        text: str | None = None,
        url: UrlOption = DEFAULT_URL,
        token: TokenOption = None,
        as_json: JsonOption = False,
    ) -> None:
        _act(url, token, as_json, number, action, {field: text}, verb)

    # the option's name differs per command, so its annotation is built here, evaluated
    command.__annotations__["text"] = Annotated[
        str | None, typer.Option(f"--{field}", help=help_text)
    ]
    return command


LinkKindArg = Annotated[
    str, typer.Argument(help="related, caused_by, causes, parent_of or child_of.", metavar="KIND")
]


def link(
    number: Number,
    kind: LinkKindArg,
    other: Annotated[str, typer.Argument(help="The other incident (it keeps the inverse).")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Link two incidents: `link INC-8 child_of INC-7` (INC-7 becomes parent_of INC-8)."""
    body = {"kind": kind, "number": _number(other)}
    _act(url, token, as_json, number, Action.LINK, body, "linked")


def unlink(
    number: Number,
    kind: LinkKindArg,
    other: Annotated[str, typer.Argument(help="The other incident.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove a link between two incidents (and its inverse on the other)."""
    body = {"kind": kind, "number": _number(other)}
    _act(url, token, as_json, number, Action.UNLINK, body, "unlinked")


def cancel(
    number: Number,
    reason: Annotated[str, typer.Option("--reason", help="Why this is no incident.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel an open incident (false alarm); it closes without resolution."""
    _act(url, token, as_json, number, Action.CANCEL, {"reason": reason}, "cancelled")


def escalate(
    number: Number,
    to: Annotated[
        str | None,
        typer.Option(
            "--to", help="Page this target now (user:bob, schedule:primary, channel:ops)."
        ),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why.")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Page the next escalation level now, or a named target."""
    _act(
        url, token, as_json, number, Action.ESCALATE, {"target": to, "reason": reason}, "escalated"
    )


def assign(
    number: Number,
    user: Annotated[str, typer.Argument(help="User name from the policy.")],
    role: Annotated[
        str, typer.Option(help="commander, assignee, scribe or communications.")
    ] = "commander",
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give a role on the incident to a user (commander by default)."""
    _act(
        url, token, as_json, number, Action.ASSIGN, {"role": role, "user": user}, f"{role}: {user}"
    )


def severity(
    number: Number,
    level: Annotated[str, typer.Argument(help="SEV1, SEV2, SEV3 or SEV4.")],
    reason: Annotated[str | None, typer.Option(help="Why.")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change the severity; the SLA clocks are re-timed."""
    body = {"severity": level.upper(), "reason": reason}
    _act(url, token, as_json, number, Action.CHANGE_SEVERITY, body, f"now {level.upper()}")


def note(
    number: Number,
    text: Annotated[str, typer.Argument(help="The note.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a note to the timeline."""
    _act(url, token, as_json, number, Action.ADD_NOTE, {"text": text}, "note added")


def status_update(
    number: Number,
    text: Annotated[str, typer.Argument(help="The update for stakeholders.")],
    public: Annotated[
        bool,
        typer.Option("--public", help="Also on the public status page and to its subscribers."),
    ] = False,
    phase: Annotated[
        StatusPhase | None, typer.Option(help="Where things stand, as the status page shows it.")
    ] = None,
    component_status: Annotated[
        ComponentStatus | None,
        typer.Option(help="Override the component status the severity implies while open."),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Post a status update for stakeholders (resets the update clock)."""
    body: dict[str, Any] = {"text": text}
    if public:
        body["public"] = True
    if phase is not None:
        body["phase"] = phase.value
    if component_status is not None:
        body["component_status"] = component_status.value
    _act(url, token, as_json, number, Action.POST_STATUS_UPDATE, body, "status update posted")


def merge(
    number: Number,
    into: Annotated[str, typer.Option("--into", help="The incident this one duplicates.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Close an open incident as a duplicate of another."""
    _act(
        url,
        token,
        as_json,
        number,
        Action.MERGE_INTO,
        {"into": _number(into)},
        f"merged into {into}",
    )


def pause(
    number: Number,
    reason: Annotated[str, typer.Option("--reason", help="Why (shown as 'paused: <reason>').")],
    until: Annotated[
        str | None,
        typer.Option(
            "--until", help="Resume by itself then: 2026-12-28T09:00+01:00, or 2h, 1d from now."
        ),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pause the SLA clocks (mitigate and resolve by default; never ack), e.g. while waiting
    on a vendor; they resume with the time they had left."""
    body = {"reason": reason, "until": _until(until)}
    _act(url, token, as_json, number, Action.PAUSE, body, f"paused: {reason}")


def _until(value: str | None) -> str | None:
    """An instant, or a duration from now (``2h``), as RFC 3339."""
    if value is None:
        return None
    from schemas.durations import parse_duration

    span = parse_duration(value)
    if isinstance(span, timedelta):
        return (datetime.now(UTC) + span).isoformat()
    return _since(value, "--until")


def resume(
    number: Number,
    note: Annotated[str | None, typer.Option(help="Optional note.")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resume paused SLA clocks with the time they had left."""
    _act(url, token, as_json, number, Action.RESUME, {"note": note}, "clocks resumed")


def show(
    number: Number,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """An incident: snapshot, SLA clocks as countdowns, escalation, timeline."""
    from schemas.incident import IncidentSnapshot
    from schemas.links import incident_url
    from starter.cli.output import show_incident

    number = _number(number)
    with _session(url, token, as_json) as (api, out):
        data = api.get(f"/incidents/{number}", number=number)
        if as_json:
            out.json(data)
            return
        # the dashboard is served by the same server as the API
        link = incident_url(api.url, number)
        show_incident(out, IncidentSnapshot.model_validate(data), link=link)


def list_incidents(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="triggered, acknowledged, …, or 'open' (repeatable)."),
    ] = None,
    severity: Annotated[
        list[str] | None, typer.Option("--severity", help="SEV1..SEV4 (repeatable).")
    ] = None,
    service: Annotated[list[str] | None, typer.Option("--service", help="(repeatable)")] = None,
    since: Annotated[str | None, typer.Option(help="Created after: 24h, 7d, or a date.")] = None,
    until: Annotated[str | None, typer.Option(help="Created before: a date.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many.")] = 50,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Incidents, newest first, from the ticket store."""
    from starter.cli.output import severity as sev_text
    from starter.cli.output import status as status_text

    statuses: list[str] = []
    for s in status or []:
        if s.lower() == "open":
            statuses += ["triggered", "acknowledged", "investigating", "mitigated"]
        elif s.lower() != "all":
            statuses.append(s.lower())
    params: list[tuple[str, str]] = [("status", s) for s in statuses]
    params += [("severity", s.upper()) for s in severity or []]
    params += [("service", s) for s in service or []]
    if (value := _since(since)) is not None:
        params.append(("since", value))
    if (value := _since(until, "--until")) is not None:
        params.append(("until", value))
    with _session(url, token, as_json) as (api, out):
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(items) < limit:
            page_params = [*params, ("limit", str(min(200, limit - len(items))))]
            if cursor:
                page_params.append(("cursor", cursor))
            page = api.get("/incidents", params=page_params)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        if as_json:
            out.json({"items": items, "next_cursor": cursor})
            return
        now = datetime.now(UTC)
        rows = []
        for it in items:
            created = datetime.fromisoformat(it["created_at"])
            state = status_text(it["status"])
            if it.get("paused_reason"):
                state.append(" (paused)", style="cyan")
            rows.append(
                [
                    it["number"],
                    sev_text(it["severity"]),
                    state,
                    it["service"],
                    it.get("commander"),
                    _age(created, now),
                    it["title"],
                ]
            )
        out.table(["number", "sev", "status", "service", "commander", "age", "title"], rows)
        if not items and out.rich:
            out.line("no incidents match")


def _age(created: datetime, now: datetime) -> str:

    return time_text.age(created, now)


def report_params(
    since: str | None, until: str | None, service: str | None, include_drills: bool
) -> dict[str, str]:
    """The query of a report or an export: the set filters only (``--since 7d`` as an
    instant)."""
    values = {
        "since": _since(since),
        "until": _since(until, "--until"),
        "service": service,
        "include_drills": "true" if include_drills else None,
    }
    return {k: v for k, v in values.items() if v}


def report(
    since: Annotated[
        str | None, typer.Option(help="Incidents created after: 7d, 4w, or a date.")
    ] = "30d",
    until: Annotated[str | None, typer.Option(help="Created before: a date.")] = None,
    service: Annotated[str | None, typer.Option(help="One service only.")] = None,
    include_drills: Annotated[
        bool, typer.Option("--include-drills", help="Count drills too.")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """MTTA, MTTR and SLA compliance, and counts by severity, category and service."""

    params = report_params(since, until, service, include_drills)
    with _session(url, token, as_json) as (api, out):
        data = api.get("/reports/summary", params=params)
        if as_json:
            out.json(data)
            return
        out.line(
            f"{data['total']} incidents",
            f"· MTTA {time_text.maybe(data.get('mtta_seconds'))}",
            f"· MTTR {time_text.maybe(data.get('mttr_seconds'))}",
            f"(net of pauses {time_text.maybe(data.get('mttr_net_seconds'))})",
            f"· {data.get('paused_incidents', 0)} paused,"
            f" {time_text.short(data.get('paused_seconds') or 0)} in all",
        )
        out.table(
            ["severity", "incidents", "MTTA", "MTTR", "MTTR net", "paused"],
            [
                [
                    row["severity"],
                    row["count"],
                    time_text.maybe(row.get("mtta_seconds")),
                    time_text.maybe(row.get("mttr_seconds")),
                    time_text.maybe(row.get("mttr_net_seconds")),
                    time_text.short(row.get("paused_seconds") or 0),
                ]
                for row in data.get("times_by_severity", [])
            ],
            title="Time to acknowledge / resolve",
        )
        out.table(
            ["severity", "clock", "met", "breached", "compliance"],
            [
                [
                    row["severity"],
                    row["clock"],
                    row["met"],
                    row["breached"],
                    "—" if row.get("compliance") is None else f"{row['compliance'] * 100:.1f}%",
                ]
                for row in data.get("sla", [])
                if row["met"] or row["breached"]
            ],
            title="SLA compliance",
        )
        for dim in ("severity", "category", "service", "status"):
            counts = data.get(f"by_{dim}", {})
            out.table(
                [dim, "incidents"],
                sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])),
                title=f"By {dim}",
            )


# ---------------------------------------------------------------------------- register
def register(app: typer.Typer) -> None:
    """Add the responder commands to ``app`` (called by ``starter.cli``)."""
    panel = PANEL
    app.command(rich_help_panel=panel)(trigger)
    simple = [
        ("ack", Action.ACKNOWLEDGE, "acknowledged", "note", "Acknowledge: stops escalation."),
        ("investigate", Action.INVESTIGATE, "investigating", "note", "Mark as being investigated."),
        ("mitigate", Action.MITIGATE, "mitigated", "note", "Impact is mitigated."),
        ("resolve", Action.RESOLVE, "resolved", "resolution", "Resolve: the cause is fixed."),
        ("close", Action.CLOSE, "closed", "reason", "Close a resolved incident."),
        ("reopen", Action.REOPEN, "reopened", "reason", "Reopen a resolved incident."),
    ]
    for name, action, verb, field, doc in simple:
        command = _simple_action(action, verb, field, f"Optional {field}.")
        command.__doc__ = doc
        command.__name__ = name
        app.command(name, rich_help_panel=panel)(command)
    app.command(rich_help_panel=panel)(cancel)
    app.command(rich_help_panel=panel)(escalate)
    app.command(rich_help_panel=panel)(assign)
    app.command(rich_help_panel=panel)(severity)
    app.command(rich_help_panel=panel)(note)
    app.command("status-update", rich_help_panel=panel)(status_update)
    app.command(rich_help_panel=panel)(merge)
    app.command(rich_help_panel=panel)(link)
    app.command(rich_help_panel=panel)(unlink)
    app.command(rich_help_panel=panel)(pause)
    app.command(rich_help_panel=panel)(resume)
    app.command(rich_help_panel=panel)(show)
    app.command("list", rich_help_panel=panel)(list_incidents)
    app.command(rich_help_panel=panel)(report)
