"""The SLA clocks of issue 20 in the pure rules, without Temporal: business-hours calendars,
per-service targets, pause and resume, and escalation levels limited to a calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.actions import (
    AcknowledgeInput,
    ChangeSeverityInput,
    EscalateInput,
    MitigateInput,
    PauseInput,
    ResolveInput,
    ResumeInput,
)
from schemas.actors import MONITORING, Person
from schemas.calendars import WEEKDAYS, Calendar, business_time_between
from schemas.enums import Clock, EventKind, Severity
from schemas.failures import FailureType
from schemas.incident import Alert, IncidentPolicy, IncidentSnapshot
from schemas.incident_rules import IncidentRules, Page, Refused, Step
from schemas.policy import (
    EscalationLevel,
    EscalationPolicy,
    EscalationTarget,
    OutOfHours,
    SeverityPolicy,
    SlaOverride,
)

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = Calendar(
    name="office",
    zone="Europe/Berlin",
    hours={d: "09:00-17:00" for d in WEEKDAYS[:5]},
    holidays=[datetime(2026, 12, 24).date()],
)
ALICE = Person(name="alice")
#: Friday 18:00 in Berlin
FRIDAY_EVENING = datetime(2026, 12, 18, 18, tzinfo=BERLIN)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)  # type: ignore[misc]


def _targets(*names: str) -> list[EscalationTarget]:
    return [EscalationTarget.model_validate(n) for n in names]


def _severity(**changes: object) -> SeverityPolicy:
    base = {
        "ack_within": timedelta(minutes=15),
        "mitigate_within": timedelta(hours=4),
        "resolve_within": timedelta(hours=16),
        "calendar": {Clock.MITIGATE: "office", Clock.RESOLVE: "office"},
    }
    return SeverityPolicy.model_validate({**base, **changes})


def _policy(levels: list[EscalationLevel] | None = None, **severity: object) -> IncidentPolicy:
    return IncidentPolicy(
        service="checkout",
        escalation=EscalationPolicy(
            name="ops",
            levels=levels
            or [EscalationLevel(targets=_targets("user:l1"), delay=timedelta(minutes=10))],
        ),
        severities={s: _severity(**severity) for s in Severity},
        calendars={"office": OFFICE},
    )


def _rules(
    policy: IncidentPolicy, at: datetime, severity: Severity = Severity.SEV3, **flags: object
) -> tuple[IncidentRules, Step]:
    alert = Alert(service="checkout", title="Checkout slow", severity=severity)
    s = IncidentSnapshot.for_alert(alert, policy.escalation, at)
    rules = IncidentRules(s, policy, **flags)  # type: ignore[arg-type]
    return rules, rules.trigger(MONITORING, {}, at)


def test_friday_evening_sev3_does_not_breach_over_the_weekend() -> None:
    rules, _ = _rules(_policy(), FRIDAY_EVENING)
    d = rules.s.deadlines
    assert d.ack == FRIDAY_EVENING + timedelta(minutes=15)  # 24x7: someone must answer
    assert d.mitigate == berlin(2026, 12, 21, 13)  # Monday 09:00 + 4h
    assert d.resolve == berlin(2026, 12, 22, 17)  # two 8h days: Monday and Tuesday
    # the weekend passes without a breach but the ack clock's
    rules.fire_due(berlin(2026, 12, 21, 8))
    assert [b.clock for b in rules.s.breaches] == [Clock.ACK]


def test_before_the_patch_every_clock_runs_24x7() -> None:
    rules, _ = _rules(_policy(), FRIDAY_EVENING, calendar_clocks=lambda: False)
    assert rules.s.deadlines.resolve == FRIDAY_EVENING + timedelta(hours=16)


def test_a_severity_change_retimes_in_the_new_calendar() -> None:
    policy = _policy()
    sev1 = _severity(calendar="24x7", resolve_within=timedelta(hours=4))
    policy = policy.model_copy(update={"severities": {**policy.severities, Severity.SEV1: sev1}})
    rules, _ = _rules(policy, FRIDAY_EVENING)
    later = FRIDAY_EVENING + timedelta(minutes=5)
    rules.act(ChangeSeverityInput(actor=ALICE, severity=Severity.SEV1), later)
    assert rules.s.deadlines.resolve == FRIDAY_EVENING + timedelta(hours=4)


def test_service_override_replaces_only_what_it_names() -> None:
    base = _severity()
    merged = SlaOverride(resolve_within=timedelta(days=2)).applied_to(base)
    assert merged.resolve_within == timedelta(days=2)
    assert merged.mitigate_within == base.mitigate_within
    assert merged.calendar == base.calendar


# ---------------------------------------------------------------------------- pause


def test_pause_stops_mitigate_and_resolve_never_ack_and_resumes_with_time_left() -> None:
    monday_10 = berlin(2026, 12, 21, 10)
    rules, _ = _rules(_policy(), monday_10)
    d = rules.s.deadlines
    assert (d.mitigate, d.resolve) == (berlin(2026, 12, 21, 14), berlin(2026, 12, 23, 10))
    noon = berlin(2026, 12, 21, 12)
    until = berlin(2026, 12, 22, 11)
    step = rules.act(PauseInput(actor=ALICE, reason="waiting on the PSP", until=until), noon)
    assert [e.kind for e in step.events] == [EventKind.PAUSED]
    assert step.events[0].details == {
        "reason": "waiting on the PSP",
        "until": until.isoformat(),
        "clocks": ["mitigate", "resolve"],
    }
    assert d.mitigate is None and d.resolve is None and d.ack is not None
    assert rules.s.paused is not None and rules.s.paused.left == {
        Clock.MITIGATE: 2 * 3600,
        Clock.RESOLVE: 14 * 3600,
    }
    # the ack clock and the escalation still fire; then the auto-resume is due
    while (due := rules.next_due()) is not None and due < until:
        rules.fire_due(due)
    assert [b.clock for b in rules.s.breaches] == [Clock.ACK]
    assert rules.next_due() == until
    step = rules.fire_due(until)
    assert [e.kind for e in step.events] == [EventKind.RESUMED]
    assert step.events[0].details["paused_seconds"] == (until - noon).total_seconds()
    assert rules.s.paused is None and rules.s.pauses[0].clocks == [Clock.MITIGATE, Clock.RESOLVE]
    assert d.mitigate == berlin(2026, 12, 22, 13)
    assert d.resolve == berlin(2026, 12, 23, 17)
    # a severity change re-times around the pause: the same deadline under the same targets
    rules.retime_clocks()
    assert d.resolve == berlin(2026, 12, 23, 17)


def test_pause_and_resume_are_refused_twice_and_a_resolve_ends_the_pause() -> None:
    rules, _ = _rules(_policy(), berlin(2026, 12, 21, 10))
    with pytest.raises(Refused, match="not paused") as refused:
        rules.check(ResumeInput(actor=ALICE))
    assert refused.value.failure == FailureType.ILLEGAL_TRANSITION
    at = berlin(2026, 12, 21, 11)
    rules.act(PauseInput(actor=ALICE, reason="vendor"), at)
    with pytest.raises(Refused, match="already paused"):
        rules.check(PauseInput(actor=ALICE, reason="again"))
    with pytest.raises(ValueError, match="must not be empty"):
        rules.check(PauseInput(actor=ALICE, reason="  "))
    rules.act(ResolveInput(actor=ALICE), at + timedelta(hours=1))
    assert rules.s.paused is None
    assert rules.s.paused_seconds() == 3600
    assert rules.next_due() is not None  # the reopen window, no auto-resume


def test_mitigated_while_paused_only_the_resolve_clock_resumes() -> None:
    rules, _ = _rules(_policy(), berlin(2026, 12, 21, 10))
    rules.act(PauseInput(actor=ALICE, reason="vendor"), berlin(2026, 12, 21, 11))
    rules.act(MitigateInput(actor=ALICE), berlin(2026, 12, 21, 12))
    rules.act(ResumeInput(actor=ALICE), berlin(2026, 12, 21, 13))
    assert rules.s.deadlines.mitigate is None
    assert rules.s.deadlines.resolve == berlin(2026, 12, 23, 12)


@settings(max_examples=60, deadline=None)
@given(
    start=st.datetimes(datetime(2026, 3, 1), datetime(2026, 11, 30), timezones=st.just(UTC)),
    pause_after=st.timedeltas(timedelta(0), timedelta(days=3)),
    paused_for=st.timedeltas(timedelta(seconds=1), timedelta(days=5)),
)
def test_net_business_time_to_the_deadline_is_the_target(
    start: datetime, pause_after: timedelta, paused_for: timedelta
) -> None:
    rules, _ = _rules(_policy(), start)
    resolve_by = rules.s.deadlines.resolve
    assert resolve_by is not None
    at = min(start + pause_after, resolve_by)
    rules.act(PauseInput(actor=ALICE, reason="vendor"), at)
    rules.act(ResumeInput(actor=ALICE), at + paused_for)
    deadline = rules.s.deadlines.resolve
    assert deadline is not None and deadline >= resolve_by
    spans = rules.paused_spans(Clock.RESOLVE)
    net = business_time_between(start, deadline, OFFICE, spans)
    assert abs(net - timedelta(hours=16)) <= timedelta(microseconds=2)


# ---------------------------------------------------------------------------- levels


def _levels() -> list[EscalationLevel]:
    return [
        EscalationLevel(
            targets=_targets("schedule:day"),
            delay=timedelta(minutes=30),
            when="office",
            out_of_hours=OutOfHours(
                targets=_targets("schedule:night"), severities=[Severity.SEV1, Severity.SEV2]
            ),
        ),
        EscalationLevel(targets=_targets("channel:list"), delay=timedelta(hours=1)),
    ]


def _paged(step: Step) -> list[tuple[int, list[str]]]:
    return [(e.level, [str(t) for t in e.targets]) for e in step.effects if isinstance(e, Page)]


def test_at_night_sev2_pages_the_out_of_hours_targets() -> None:
    _, step = _rules(_policy(_levels()), FRIDAY_EVENING, Severity.SEV2)
    assert _paged(step) == [(1, ["schedule:night"])]


def test_in_hours_the_level_pages_its_own_targets() -> None:
    _, step = _rules(_policy(_levels()), berlin(2026, 12, 21, 10), Severity.SEV4)
    assert _paged(step) == [(1, ["schedule:day"])]


def test_at_night_sev4_is_held_until_the_next_business_morning() -> None:
    rules, step = _rules(_policy(_levels()), FRIDAY_EVENING, Severity.SEV4)
    monday_9 = berlin(2026, 12, 21, 9)
    assert _paged(step) == []
    assert [e.kind for e in step.events] == [EventKind.TRIGGERED, EventKind.ESCALATION_HELD]
    assert step.events[1].details == {
        "level": 1,
        "calendar": "office",
        "until": monday_9.isoformat(),
    }
    assert rules.s.deadlines.next_escalation == monday_9
    # the ack clock (24x7) breaches first without paging anyone
    rules.fire_due(FRIDAY_EVENING + timedelta(minutes=15))
    step = rules.fire_due(monday_9)
    assert _paged(step) == [(1, ["schedule:day"])]
    assert step.events[0].details["reason"] == "working hours of office began"
    assert rules.s.deadlines.next_escalation == monday_9 + timedelta(minutes=30)
    step = rules.fire_due(monday_9 + timedelta(minutes=30))
    assert _paged(step) == [(2, ["channel:list"])]


def test_acknowledging_a_held_incident_stops_the_hold_and_by_hand_it_pages_now() -> None:
    rules, _ = _rules(_policy(_levels()), FRIDAY_EVENING, Severity.SEV4)
    step = rules.act(EscalateInput(actor=ALICE), FRIDAY_EVENING + timedelta(minutes=1))
    assert _paged(step) == [(1, ["schedule:day"])]
    assert not rules.s.escalation.held
    rules2, _ = _rules(_policy(_levels()), FRIDAY_EVENING, Severity.SEV4)
    rules2.act(AcknowledgeInput(actor=ALICE), FRIDAY_EVENING + timedelta(minutes=1))
    assert rules2.s.deadlines.next_escalation is None and not rules2.s.escalation.held


# ---------------------------------------------------------------------------- display


def test_countdowns_in_business_time_name_the_calendar() -> None:
    from starter.dashboard.queries import BoardRow
    from starter.sla_clocks import clock_states

    rules, _ = _rules(_policy(), FRIDAY_EVENING)
    s = rules.s
    assert set(s.clock_calendars) == {Clock.MITIGATE, Clock.RESOLVE}
    saturday = berlin(2026, 12, 19, 12)
    states = {c.clock: c for c in clock_states(s, saturday)}
    assert states[Clock.ACK].business_text == ""  # 24x7: the wall-clock countdown says it all
    assert states[Clock.RESOLVE].business_text == "16h 0m business time left (office)"
    row = BoardRow.model_validate(
        {**s.model_dump(mode="json"), "priority": s.priority.value, "commander": None}
    )
    assert row.business_left(Clock.MITIGATE, saturday) == "4h 0m business (office)"
    rules.act(PauseInput(actor=ALICE, reason="vendor"), berlin(2026, 12, 21, 11))
    paused = {c.clock: c for c in clock_states(s, berlin(2026, 12, 21, 12))}
    assert paused[Clock.RESOLVE].business_text == "paused, 14h 0m left"
