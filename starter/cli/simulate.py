"""``incidentflow policy simulate``: the plan a policy makes for one scenario, as text
(``--diff OLD.yaml``: what a change alters) or JSON. No server: it runs the workflow's rules
(``schemas.policy_simulation``) on a simulated clock."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from schemas.durations import format_duration
from schemas.enums import EventKind, Severity
from schemas.policy import Policy
from schemas.policy_simulation import Simulation, simulate
from starter import time_text


def _local(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")


def plan_lines(sim: Simulation, zone: ZoneInfo) -> list[str]:
    """The plan as plain lines (stable, so two plans diff line by line). Instants are shown
    in ``zone`` (the one ``--at`` was written in) and as an offset from the trigger."""

    def rel(at: datetime) -> str:
        return "+" + time_text.short((at - sim.at).total_seconds())

    ack = f", acknowledged after {format_duration(sim.ack_after)}" if sim.ack_after else ""
    lines = [
        f"Scenario: {sim.service} {sim.severity.value} triggered {_local(sim.at, zone)}{ack}",
        "",
        "SLA deadlines:",
    ]
    for c in sim.clocks:
        if c.deadline is None:
            lines.append(f"  {c.clock.value:<9} not running")
            continue
        business = "" if c.calendar == "24x7" else " working time"
        outcome = f"  [{c.outcome}]" if c.outcome else ""
        wall = time_text.short(c.wall.total_seconds()) if c.wall is not None else "-"
        lines.append(
            f"  {c.clock.value:<9} {format_duration(c.target)}{business} ({c.calendar}) -> "
            f"{_local(c.deadline, zone)} ({wall} wall clock){outcome}"
        )
    lines += ["", "Pages:"]
    if not sim.pages:
        lines.append("  nobody is paged")
    for page in sim.pages:
        loop = f" (loop {page.loop + 1})" if page.loop else ""
        lines.append(
            f"  {rel(page.at):>9}  {_local(page.at, zone)}  level {page.level}{loop}: "
            f"{', '.join(page.targets)} -> {', '.join(page.reaches) or 'nobody on call'}"
        )
    lines += ["", "Timeline (never mitigated or resolved):"]
    reminders: list[datetime] = []
    for e in sim.timeline:
        if e.kind == EventKind.STATUS_UPDATE_DUE:
            reminders.append(e.at)  # hourly reminders: one line for the lot
            continue
        if reminders:
            lines.append(_reminders(reminders, rel))
            reminders = []
        details = " ".join(
            f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in e.details.items()
            if v not in (None, "", [], {}) and k not in ("dedup_key", "title", "source")
        )
        lines.append(f"  {rel(e.at):>9}  {e.kind.value} {details}".rstrip())
    if reminders:
        lines.append(_reminders(reminders, rel))
    lines.append("")
    if sim.review_at is not None:
        review_zone = ZoneInfo(sim.review_zone or "UTC")
        lines.append(
            f"Review: booked for {_local(sim.review_at, review_zone)} "
            "(were it resolved at its resolve deadline)"
        )
    else:
        lines.append("Review: not required for this severity")
    return lines


def _reminders(ats: list[datetime], rel: Callable[[datetime], str]) -> str:
    if len(ats) == 1:
        return f"  {rel(ats[0]):>9}  status_update_due"
    return f"  {rel(ats[0]):>9}  status_update_due x{len(ats)} (until {rel(ats[-1])})"


def run(
    policy: Policy,
    *,
    service: str,
    severity: Severity,
    at: datetime,
    ack_after: timedelta | None,
    old: Policy | None = None,
    as_json: bool = False,
) -> str:
    """The text to print: the plan, or the diff from ``old``'s plan."""
    zone = at.tzinfo if isinstance(at.tzinfo, ZoneInfo) else None
    shown = zone or ZoneInfo("UTC")
    if at.tzinfo is not None and zone is None:
        # a fixed offset (``+01:00``): show instants at that offset
        shown = at.tzinfo  # type: ignore[assignment]
    new_sim = simulate(policy, service, severity, at, ack_after=ack_after)
    if old is None:
        if as_json:
            return json.dumps(new_sim.model_dump(mode="json"), indent=2)
        return "\n".join(plan_lines(new_sim, shown))
    old_sim = simulate(old, service, severity, at, ack_after=ack_after)
    if as_json:
        return json.dumps(
            {"old": old_sim.model_dump(mode="json"), "new": new_sim.model_dump(mode="json")},
            indent=2,
        )
    diff = list(
        difflib.unified_diff(
            plan_lines(old_sim, shown), plan_lines(new_sim, shown), "old", "new", lineterm=""
        )
    )
    return "\n".join(diff) if diff else "No change for this scenario."
