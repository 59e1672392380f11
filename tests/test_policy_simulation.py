"""``incidentflow policy simulate``: the plan for one scenario from the workflow's own rules,
without a server, its ``--diff``, and one scenario run both as a simulation and as a live
incident on the real dev server, compared event by event."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.client import Client

from schemas.calendars import WEEKDAYS, Calendar
from schemas.enums import Clock, EventKind, Severity
from schemas.incident import Alert, TimelineEvent
from schemas.policy import Policy
from schemas.policy_file import load_policy
from schemas.policy_simulation import simulate
from tests.conftest import wait_for
from tests.support_cli import EXAMPLE_POLICY, run_cli
from tests.support_drills import TIME_SCALE
from tests.support_incidents import make_policy, running_stack

BERLIN = ZoneInfo("Europe/Berlin")


def test_christmas_eve_sev2_on_the_example_policy() -> None:
    """The issue's scenario: who is paged when, rotations resolved, the ack met in 20m."""
    policy = load_policy(EXAMPLE_POLICY)
    at = datetime(2026, 12, 24, 3, tzinfo=BERLIN)
    sim = simulate(policy, "checkout", Severity.SEV2, at, ack_after=timedelta(minutes=10))
    assert [(p.at - at, p.level, p.reaches) for p in sim.pages[:2]] == [
        # the weekly Berlin rotation (alice, bob, carol from 2024-01-01) is at carol this week
        (timedelta(0), 1, ["carol", "channel:ops-console"]),
        # secondary: daily New York rotation (dave, erin, frank); 21:00 on the 23rd there
        (timedelta(minutes=5), 2, ["erin", "alice"]),
    ]
    # acknowledged at 10m (level 3 not paged yet), never mitigated: the 4h mitigate breach
    # escalates again, to the next level (PagerDuty's ack timeout)
    assert (sim.pages[2].at - at, sim.pages[2].level) == (timedelta(hours=4), 3)
    clocks = {c.clock: c for c in sim.clocks}
    assert clocks[Clock.ACK].outcome == "met"
    assert clocks[Clock.RESOLVE].deadline == at + timedelta(days=1)
    # SEV2: 5 business days after a resolve at its deadline (Christmas Day): the 28th, 29th,
    # 30th, New Year's Day and Monday 4 January; the 31st is a holiday of berlin-office, the
    # review's calendar; at the review's 14:00 Berlin
    assert sim.review_zone == "Europe/Berlin"
    assert sim.review_at == datetime(2027, 1, 4, 14, tzinfo=BERLIN)


def test_friday_evening_sev3_on_business_hours_waits_for_monday() -> None:
    policy = load_policy(EXAMPLE_POLICY)
    at = datetime(2026, 12, 18, 18, tzinfo=BERLIN)
    sim = simulate(policy, "data-pipeline", Severity.SEV3, at)
    monday_9 = datetime(2026, 12, 21, 9, tzinfo=BERLIN)
    assert [(p.at, p.level) for p in sim.pages] == [
        (monday_9, 1),
        (monday_9 + timedelta(minutes=30), 2),
    ]
    assert sim.timeline[1].kind == EventKind.ESCALATION_HELD
    clocks = {c.clock: c for c in sim.clocks}
    assert clocks[Clock.RESOLVE].calendar == "berlin-office"
    # the service's own SEV3 target: 2d = 48 working hours = six 8-hour days (24th off)
    assert clocks[Clock.RESOLVE].target == timedelta(days=2)
    assert clocks[Clock.RESOLVE].deadline == datetime(2026, 12, 30, 17, tzinfo=BERLIN)
    # a SEV1 at the same time wakes the out-of-hours rotation at once
    sev1 = simulate(policy, "data-pipeline", Severity.SEV1, at)
    assert sev1.pages[0].at == at and sev1.pages[0].targets == ["schedule:primary"]


def test_cli_simulate_and_diff(tmp_path: Path) -> None:
    args = ["--service", "data-pipeline", "--severity", "SEV3", "--at", "2026-12-18T18:00+01:00"]
    done = run_cli("policy", "simulate", str(EXAMPLE_POLICY), *args)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Scenario: data-pipeline SEV3 triggered Fri 2026-12-18 18:00" in out
    assert "resolve   2d working time (berlin-office) -> Wed 2026-12-30 17:00" in out
    assert "level 1: schedule:secondary, channel:ops-console" in out
    assert "escalation_held level=1 calendar=berlin-office" in out
    # the same policy without the calendar on the business-hours levels
    old = EXAMPLE_POLICY.read_text().replace("        when: berlin-office\n", "", 1)
    old = old.replace(
        "        out_of_hours:\n          severities: [SEV1, SEV2]\n"
        "          targets: [schedule:primary]\n",
        "",
    )
    (tmp_path / "old.yaml").write_text(old)
    diffed = run_cli(
        "policy", "simulate", str(EXAMPLE_POLICY), *args, "--diff", str(tmp_path / "old.yaml")
    )
    assert diffed.returncode == 0, diffed.stderr
    lines = diffed.stdout.splitlines()
    assert lines[:2] == ["--- old", "+++ new"]
    assert any(line.startswith("+") and "escalation_held" in line for line in lines)
    assert any(line.startswith("-") and "+0s  Fri 2026-12-18 18:00" in line for line in lines)
    same = run_cli("policy", "simulate", str(EXAMPLE_POLICY), *args, "--diff", str(EXAMPLE_POLICY))
    assert same.stdout.strip() == "No change for this scenario."
    bad = run_cli("policy", "simulate", str(EXAMPLE_POLICY), *args[:4], "--at", "2026-12-18")
    assert bad.returncode == 2 and "offset" in bad.stderr


# ---------------------------------------------------------------------------- sim == live

#: every hour counts but a far holiday: the calendar paths, with deadlines a test can wait on
NEARLY_ALWAYS = Calendar(
    name="nearly-always", hours={d: "00:00-24:00" for d in WEEKDAYS}, holidays=[date(2099, 1, 1)]
)


def compared_policy() -> Policy:
    """Seconds-scale clocks due in the order ``fire_due`` handles them (escalation, ack,
    mitigate, resolve): a busy host runs a timer late, never early, and instants that fall
    due together still write their events in the simulated order."""
    step = 1.0 * TIME_SCALE
    data = make_policy(
        level_delay=step,
        levels=2,
        ack_within=2.5 * step,
        mitigate_within=3.5 * step,
        resolve_within=4.5 * step,
    ).model_dump(mode="json")
    data["calendars"] = [NEARLY_ALWAYS.model_dump(mode="json")]
    for sp in data["severities"].values():
        sp["calendar"] = {"mitigate": NEARLY_ALWAYS.name, "resolve": NEARLY_ALWAYS.name}
    data["escalation_policies"][0]["levels"][1]["when"] = NEARLY_ALWAYS.name
    return Policy.model_validate(data)


def comparable(events: list[TimelineEvent]) -> list[tuple[EventKind, dict[str, Any]]]:
    """Kinds and details, without how late a timer ran and where the alert came from."""
    skip = ("late_by_seconds", "title", "source", "dedup_key")
    return [
        (e.kind, {k: v for k, v in e.details.items() if k not in skip})
        for e in events
        if e.kind not in (EventKind.NOTIFICATION_FAILED, EventKind.ALERT_REPEATED)
    ]


async def test_a_simulation_and_the_live_incident_agree(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    policy = compared_policy()
    async with running_stack(temporal_client, database_url, task_queue, policy) as st:
        ref = await st.client.trigger(
            Alert(service="checkout", title="compared", severity=Severity.SEV3, dedup_key="cmp")
        )

        async def resolve_breached() -> list[TimelineEvent] | None:
            snap = await st.client.get(ref.number)
            done = any(
                e.kind == EventKind.SLA_BREACHED and e.details["clock"] == "resolve"
                for e in snap.timeline
            )
            return snap.timeline if done else None

        live = await wait_for(resolve_breached, timeout=30 * TIME_SCALE, message="resolve breach")
        # the clocks run from the workflow's start (the trigger event follows the number)
        created = (await st.client.get(ref.number)).created_at
        sim = simulate(policy, "checkout", Severity.SEV3, created)
        live_events = [e for e in live if e.kind != EventKind.NOTIFICATION_FAILED]
        assert comparable(live_events) == comparable(sim.timeline)
        # each live event happened at its simulated instant or (a timer's latency) after it
        for real, planned in zip(live_events, sim.timeline, strict=True):
            assert planned.at <= real.at < planned.at + timedelta(seconds=2 * TIME_SCALE)
        snap = await st.client.get(ref.number)
        assert {b.clock: b.deadline for b in snap.breaches} == {
            c.clock: c.deadline for c in sim.clocks
        }
        # the pages the worker sent are the ones planned: each paging event's targets
        paging = [e for e in live_events if e.kind in (EventKind.TRIGGERED, EventKind.ESCALATED)]
        planned = {
            (e.seq, target)
            for e, page in zip(paging, sim.pages, strict=True)
            for target in page.targets
        }

        async def sent() -> set[tuple[int, str]] | None:
            rows = await st.notified(ref.number)
            got = {
                (r["seq"], r["target"])
                for r in rows
                if r["event_kind"] in ("triggered", "escalated")
            }
            return got if len(got) >= len(planned) else None

        assert await wait_for(sent, timeout=10 * TIME_SCALE, message="pages recorded") == planned
