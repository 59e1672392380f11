"""How the incident commands print: rich colour and tables on a terminal, tab-separated plain
text when piped, JSON with ``--json``. User strings are never read as rich markup."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from schemas.enums import Severity, Status
from schemas.incident import IncidentSnapshot
from starter import time_text
from starter.cli.common import CliError
from starter.sla_clocks import clock_states

SEVERITY_STYLE: dict[str, str] = {
    Severity.SEV1: "bold white on red",
    Severity.SEV2: "bold red",
    Severity.SEV3: "yellow",
    Severity.SEV4: "blue",
}
STATUS_STYLE: dict[str, str] = {
    Status.TRIGGERED: "bold red",
    Status.ACKNOWLEDGED: "yellow",
    Status.INVESTIGATING: "magenta",
    Status.MITIGATED: "cyan",
    Status.RESOLVED: "green",
    Status.CLOSED: "dim",
}


class Output:
    """One command's output channel."""

    def __init__(self, *, as_json: bool = False) -> None:
        self.as_json = as_json
        self.console = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def rich(self) -> bool:
        return self.console.is_terminal

    # -- primitives ----------------------------------------------------------------------
    def json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def line(self, *parts: str | Text) -> None:
        text = Text()
        for i, part in enumerate(parts):
            if i:
                text.append(" ")
            text.append(part if isinstance(part, Text) else Text(str(part)))
        self.console.print(text)

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        title: str | None = None,
    ) -> None:
        """A rich table on a terminal; a header line and tab-separated rows otherwise."""
        rows = [list(r) for r in rows]
        if not self.rich:
            if title:
                sys.stdout.write(f"# {title}\n")
            sys.stdout.write("\t".join(columns) + "\n")
            for row in rows:
                sys.stdout.write("\t".join(_plain(c) for c in row) + "\n")
            sys.stdout.flush()
            return
        if not rows:
            if title:
                self.console.print(Text(f"{title}: none", style="dim"))
            return
        table = Table(title=title, title_justify="left", header_style="bold")
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*[c if isinstance(c, Text) else Text(_plain(c)) for c in row])
        self.console.print(table)

    def error(self, err: CliError) -> None:
        if self.as_json:
            self.json(err.as_json())
        self.err.print(Text(f"error: {err.message}", style="bold red"))
        if err.hint:
            self.err.print(Text(f"  next: {err.hint}", style="dim"))

    def ok(self, message: str) -> None:
        self.console.print(Text(message, style="green" if self.rich else ""))


def _plain(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, Text):
        return value.plain
    if isinstance(value, datetime):
        return time_text.stamp(value)
    return str(value).replace("\t", " ").replace("\n", " ")


def severity(value: str) -> Text:
    return Text(str(value), style=SEVERITY_STYLE.get(value, ""))


def status(value: str) -> Text:
    return Text(str(value), style=STATUS_STYLE.get(value, ""))


def deadline_text(deadline: datetime | None, now: datetime) -> Text:
    if deadline is None:
        return Text("—")
    text = time_text.countdown(deadline, now)
    style = (
        "bold red"
        if deadline < now
        else ("yellow" if (deadline - now).total_seconds() < 300 else "")
    )
    return Text(text, style=style)


# -- incidents -------------------------------------------------------------------------------
def snapshot_summary(out: Output, snap: IncidentSnapshot, verb: str | None = None) -> None:
    """One line after an action: ``INC-7 acknowledged · SEV2 · checkout``."""
    head = Text(snap.number, style="bold")
    out.line(
        head,
        status(snap.status.value),
        Text("·"),
        severity(snap.severity.value),
        Text("·"),
        Text(snap.service),
        Text(f"— {verb}" if verb else ""),
    )


def show_incident(
    out: Output, snap: IncidentSnapshot, *, now: datetime | None = None, link: str | None = None
) -> None:
    """The snapshot, its SLA clocks as countdowns, escalation, and the timeline; ``link`` is
    the incident's dashboard page."""
    now = now or datetime.now(UTC)
    out.line(
        Text(snap.number, style="bold"),
        severity(snap.severity.value),
        status(snap.status.value),
        Text(snap.priority.value),
        Text(snap.title, style="bold"),
    )
    facts: list[tuple[str, Any]] = [
        ("service", snap.service),
        ("category", snap.category.value),
        ("impact/urgency", f"{snap.impact.value}/{snap.urgency.value}"),
        ("alerts", f"{snap.alert_count}{' (cleared)' if snap.alert_cleared else ''}"),
        ("source", snap.source + (f" key={snap.dedup_key}" if snap.dedup_key else "")),
        (
            "triggered",
            f"{time_text.stamp(snap.created_at)} ({time_text.age(snap.created_at, now)} ago)",
        ),
    ]
    for role, user in snap.responders.items():
        facts.append((role.value, user))
    for label, value in (
        ("acknowledged", snap.acknowledged_at),
        ("mitigated", snap.mitigated_at),
        ("resolved", snap.resolved_at),
        ("closed", snap.closed_at),
    ):
        if value is not None:
            facts.append((label, time_text.stamp(value)))
    if snap.paused is not None:
        until = f", resumes {time_text.stamp(snap.paused.until)}" if snap.paused.until else ""
        facts.append(
            ("paused", f"{snap.paused.reason} (since {time_text.stamp(snap.paused.since)}{until})")
        )
    if snap.pauses or snap.paused:
        facts.append(("paused time", time_text.short(snap.paused_seconds(now))))
    if snap.merged_into:
        facts.append(("merged into", snap.merged_into))
    for related in snap.incident_links:
        facts.append((related.kind.value.replace("_", " "), related.number))
    if snap.description:
        facts.append(("description", snap.description))
    for key, label_value in snap.labels.items():
        facts.append((f"label {key}", label_value))
    if link:
        facts.append(("dashboard", link))
    for label, value in facts:
        out.line(Text(f"  {label:<15}", style="dim"), Text(str(value)))

    rows = []
    for c in clock_states(snap, now):
        if c.breach is not None:
            late = time_text.short(c.breach.late_by_seconds)
            state = Text(f"BREACHED by {late}", style="bold red")
        elif c.paused_left is not None:
            state = Text(c.business_text, style="cyan")
        elif c.deadline is not None:
            state = deadline_text(c.deadline, now)
            if c.business_text:
                state.append(f" · {c.business_text}")
        elif c.met_at is not None:
            state = Text("met", style="green")
        else:
            state = Text("not running", style="dim")
        rows.append([c.clock.value, state, c.deadline])
    out.table(["clock", "state", "deadline"], rows, title="SLA clocks")

    esc = snap.escalation
    escalation = f"level {esc.level} of {len(esc.policy.levels)}"
    if esc.exhausted:
        escalation += ", exhausted"
    elif esc.held and snap.deadlines.next_escalation is not None:
        at = time_text.countdown(snap.deadlines.next_escalation, now)
        escalation += f", held until working hours begin ({at})"
    elif esc.active and snap.deadlines.next_escalation is not None:
        escalation += f", next level {time_text.countdown(snap.deadlines.next_escalation, now)}"
    elif not esc.active:
        escalation += ", stopped"
    out.line(Text("  escalation     ", style="dim"), Text(escalation))

    out.table(
        ["#", "when", "who", "what", "details"],
        [
            [e.seq, time_text.stamp(e.at), e.actor, e.kind.value, details_text(e.details)]
            for e in snap.timeline
        ],
        title="Timeline",
    )


def details_text(details: dict[str, Any]) -> str:
    parts = []
    for key, value in details.items():
        if value in ("", None, [], {}):
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        parts.append(f"{key}={value}")
    return " ".join(parts)
