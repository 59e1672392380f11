"""The incident's rules (``schemas.incident_rules``) without Temporal: a fake clock, a
snapshot, and what each step writes and asks the workflow to do. Properties (hypothesis)
for escalation and the SLA clocks; examples for transitions, acknowledgement, refusals."""

from __future__ import annotations

import typing
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.actions import (
    ACTION_SPECS,
    AcknowledgeInput,
    AssignInput,
    CancelInput,
    ChangeSeverityInput,
    CloseInput,
    EscalateInput,
    InvestigateInput,
    MergeInput,
    MitigateInput,
    NoteInput,
    ResolveInput,
    StatusUpdateInput,
)
from schemas.actors import INCIDENTFLOW, MONITORING, PAGERDUTY, Person
from schemas.enums import (
    Action,
    Category,
    EventKind,
    Impact,
    Priority,
    Role,
    Severity,
    Status,
    Urgency,
)
from schemas.failures import FailureType
from schemas.incident import EscalationState, IncidentPolicy, IncidentSnapshot
from schemas.incident_rules import (
    ACTION_OF,
    IncidentRules,
    Notify,
    Page,
    Refused,
    StartReview,
    Step,
)
from schemas.lifecycle import LEADS_TO, TRANSITIONS
from schemas.policy import EscalationLevel, EscalationPolicy, EscalationTarget, SeverityPolicy
from workflows.incident import IncidentWorkflow

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
ALICE = Person(name="alice")
BOB = Person(name="bob")
FAR = timedelta(days=1000)


class FakeClock:
    """The instant the rules are given; moves only when a test moves it."""

    def __init__(self, at: datetime = T0) -> None:
        self.now = at

    def advance(self, by: timedelta) -> datetime:
        self.now += by
        return self.now

    def to(self, at: datetime) -> datetime:
        assert at >= self.now, "the fake clock only moves forward"
        self.now = at
        return self.now


def _targets(*names: str) -> list[EscalationTarget]:
    return [EscalationTarget.model_validate(n) for n in names]


def _escalation(delays_minutes: list[int], repeat: int = 0) -> EscalationPolicy:
    return EscalationPolicy(
        name="ops",
        levels=[
            EscalationLevel(targets=_targets(f"user:l{i + 1}"), delay=timedelta(minutes=d))
            for i, d in enumerate(delays_minutes)
        ],
        repeat=repeat,
    )


def _severity(
    ack: timedelta = timedelta(minutes=5),
    mitigate: timedelta = timedelta(minutes=30),
    resolve: timedelta = timedelta(hours=4),
    update: timedelta | None = None,
    review: bool = False,
    on_breach: list[str] | None = None,
) -> SeverityPolicy:
    return SeverityPolicy(
        ack_within=ack,
        mitigate_within=mitigate,
        resolve_within=resolve,
        update_every=update,
        review_required=review,
        on_breach=_targets(*(on_breach or [])),
    )


def _policy(
    escalation: EscalationPolicy | None = None,
    severities: dict[Severity, SeverityPolicy] | None = None,
    auto_resolve: bool = True,
) -> IncidentPolicy:
    return IncidentPolicy(
        service="checkout",
        escalation=escalation or _escalation([10, 10]),
        severities=severities or {s: _severity() for s in Severity},
        auto_resolve=auto_resolve,
    )


def _snapshot(policy: IncidentPolicy, severity: Severity = Severity.SEV2) -> IncidentSnapshot:
    return IncidentSnapshot(
        number="INC-7",
        title="Checkout returns 500s",
        service="checkout",
        severity=severity,
        priority=Priority.P2,
        impact=Impact.HIGH,
        urgency=Urgency.HIGH,
        category=Category.SOFTWARE,
        created_at=T0,
        escalation=EscalationState(policy=policy.escalation),
    )


def _triggered(
    policy: IncidentPolicy, clock: FakeClock, severity: Severity = Severity.SEV2
) -> tuple[IncidentRules, Step]:
    rules = IncidentRules(_snapshot(policy, severity), policy)
    return rules, rules.trigger(MONITORING, {"title": "Checkout returns 500s"}, clock.now)


def _kinds(step: Step) -> list[EventKind]:
    return [e.kind for e in step.events]


def _pages(step: Step) -> list[int]:
    return [e.level for e in step.effects if isinstance(e, Page)]


# ---------------------------------------------------------------------------- tables


def test_every_action_has_one_spec_one_transition_and_its_own_input() -> None:
    assert list(ACTION_SPECS) == list(Action)
    assert set(TRANSITIONS) == set(Action)
    assert {ACTION_OF[spec.input_type] for spec in ACTION_SPECS.values()} == set(Action)
    assert len({(spec.method, spec.route) for spec in ACTION_SPECS.values()}) == len(Action)


@pytest.mark.parametrize("action", list(Action))
def test_each_spec_names_an_update_of_the_workflow_with_its_input(action: Action) -> None:
    spec = ACTION_SPECS[action]
    update = getattr(IncidentWorkflow, spec.update)
    assert update._defn.name == spec.update
    hints = typing.get_type_hints(update)
    assert hints["a"] is spec.input_type


# ---------------------------------------------------------------------------- trigger


def test_trigger_starts_the_clocks_from_creation_and_pages_level_one() -> None:
    clock = FakeClock(T0 + timedelta(seconds=3))  # the number was allocated meanwhile
    policy = _policy(_escalation([10, 20]))
    rules, step = _triggered(policy, clock)
    s = rules.s
    assert _kinds(step) == [EventKind.TRIGGERED]
    assert step.events[0].seq == 1 and step.events[0].at == clock.now
    assert step.effects == [Page(step.events[0], 1, _targets("user:l1"))]
    assert s.deadlines.ack == T0 + timedelta(minutes=5)
    assert s.deadlines.mitigate == T0 + timedelta(minutes=30)
    assert s.deadlines.next_escalation == clock.now + timedelta(minutes=10)
    assert rules.next_due() == T0 + timedelta(minutes=5)


# ---------------------------------------------------------------------------- acknowledging


def test_a_persons_acknowledge_meets_the_ack_clock_stops_escalation_and_takes_command() -> None:
    clock = FakeClock()
    policy = _policy(severities={s: _severity(update=timedelta(minutes=20)) for s in Severity})
    rules, _ = _triggered(policy, clock)
    rules.guard(AcknowledgeInput(actor=ALICE))
    step = rules.act(
        AcknowledgeInput(actor=ALICE, note="on it"), clock.advance(timedelta(minutes=2))
    )
    s = rules.s
    assert s.status == Status.ACKNOWLEDGED
    assert s.acknowledged_at == clock.now
    assert s.deadlines.ack is None and s.deadlines.next_escalation is None
    assert not s.escalation.active
    assert s.deadlines.update == clock.now + timedelta(minutes=20)
    assert s.responders == {Role.COMMANDER: "alice"}
    assert s.participants == ["alice"]
    assert _kinds(step) == [EventKind.ACKNOWLEDGED]
    assert step.events[0].details == {"note": "on it"}
    assert step.effects == [Notify(step.events[0], _targets("user:l1"))]


def test_an_integrations_acknowledge_acknowledges_but_the_first_person_takes_command() -> None:
    clock = FakeClock()
    rules, _ = _triggered(_policy(), clock)
    rules.act(AcknowledgeInput(actor=PAGERDUTY), clock.advance(timedelta(minutes=1)))
    assert rules.s.acknowledged_at == clock.now
    assert Role.COMMANDER not in rules.s.responders
    rules.act(MitigateInput(actor=BOB), clock.advance(timedelta(minutes=1)))
    assert rules.s.responders[Role.COMMANDER] == "bob"
    assert rules.s.acknowledged_at == T0 + timedelta(minutes=1)


def test_an_alert_clearing_resolves_without_acknowledging() -> None:
    clock = FakeClock()
    rules, _ = _triggered(_policy(), clock)
    step = rules.clear_alert(MONITORING, clock.advance(timedelta(minutes=3)))
    s = rules.s
    assert _kinds(step) == [EventKind.ALERT_CLEARED, EventKind.RESOLVED]
    assert step.events[1].details == {"resolution": "alert cleared"}
    assert s.status == Status.RESOLVED and s.acknowledged_at is None
    assert s.deadlines.ack is None and s.deadlines.next_escalation is None
    assert rules.clear_alert(MONITORING, clock.advance(timedelta(minutes=1))).events == []


def test_without_auto_resolve_a_clear_is_only_noted() -> None:
    clock = FakeClock()
    rules, _ = _triggered(_policy(auto_resolve=False), clock)
    step = rules.clear_alert(MONITORING, clock.now)
    assert _kinds(step) == [EventKind.ALERT_CLEARED]
    assert rules.s.status == Status.TRIGGERED


def test_the_earlier_rule_applies_where_the_patch_says_so_and_is_asked_only_on_disagreement() -> (
    None
):
    asked: list[bool] = []

    def before_the_patch() -> bool:
        asked.append(True)
        return False

    clock = FakeClock()
    policy = _policy()
    rules = IncidentRules(_snapshot(policy), policy, typed_actors=before_the_patch)
    rules.trigger(MONITORING, {}, clock.now)
    rules.act(InvestigateInput(actor=PAGERDUTY), clock.advance(timedelta(minutes=1)))
    # before typed actors, PagerDuty's hands-on action acknowledged (now only a person's does)
    assert rules.s.acknowledged_at == clock.now
    assert asked == [True]
    assert asked == [True]  # PagerDuty takes no command under either rule: not asked again
    rules.act(ResolveInput(actor=ALICE), clock.advance(timedelta(minutes=1)))
    # before typed actors only the acknowledging person took command
    assert asked == [True, True]
    assert Role.COMMANDER not in rules.s.responders


# ---------------------------------------------------------------------------- transitions


@pytest.mark.parametrize(
    ("a", "kind", "details"),
    [
        (
            CancelInput(actor=ALICE, reason="false alarm"),
            EventKind.CANCELLED,
            {"reason": "false alarm"},
        ),
        (MergeInput(actor=ALICE, into="INC-3"), EventKind.MERGED, {"into": "INC-3"}),
    ],
)
def test_closing_actions_stop_every_clock(a: typing.Any, kind: EventKind, details: dict) -> None:
    clock = FakeClock()
    rules, _ = _triggered(_policy(), clock)
    step = rules.act(a, clock.advance(timedelta(minutes=1)))
    s = rules.s
    assert s.status == LEADS_TO[ACTION_OF[type(a)]] == Status.CLOSED
    assert _kinds(step) == [kind] and step.events[0].details == details
    assert s.closed_at == clock.now
    assert rules.next_due() is None
    assert s.close_reason in {"cancelled: false alarm", "duplicate of INC-3"}


def test_status_update_note_and_assign_keep_the_status() -> None:
    clock = FakeClock()
    policy = _policy(severities={s: _severity(update=timedelta(minutes=15)) for s in Severity})
    rules, _ = _triggered(policy, clock)
    rules.act(AcknowledgeInput(actor=ALICE), clock.advance(timedelta(minutes=1)))
    step = rules.act(
        StatusUpdateInput(actor=ALICE, text="rolling back"), clock.advance(timedelta(minutes=4))
    )
    assert rules.s.deadlines.update == clock.now + timedelta(minutes=15)
    assert rules.s.last_status_update_at == clock.now
    assert _kinds(step) == [EventKind.STATUS_UPDATE_POSTED]
    step = rules.act(AssignInput(actor=ALICE, role=Role.ASSIGNEE, user="carol"), clock.now)
    assert rules.s.responders[Role.ASSIGNEE] == "carol" and "carol" in rules.s.participants
    assert rules.act(NoteInput(actor=BOB, text="db is fine"), clock.now).events[0].kind == (
        EventKind.NOTE_ADDED
    )
    assert rules.s.status == Status.ACKNOWLEDGED


def test_hand_over_starts_a_review_where_the_severity_requires_one_else_closes() -> None:
    clock = FakeClock()
    policy = _policy(
        severities={
            **{s: _severity() for s in Severity},
            Severity.SEV1: _severity(review=True),
        }
    )
    rules, _ = _triggered(policy, clock, Severity.SEV1)
    rules.act(ResolveInput(actor=ALICE), clock.advance(timedelta(minutes=10)))
    assert rules.next_due() == clock.now + policy.reopen_window
    assert not rules.reopen_window_passed(clock.advance(timedelta(minutes=59)))
    assert rules.reopen_window_passed(clock.advance(timedelta(minutes=1)))
    step = rules.hand_over(clock.now)
    assert _kinds(step) == [EventKind.REVIEW_SCHEDULED]
    assert step.effects == [StartReview("review:INC-7", 5)]
    assert rules.s.review_workflow_id == "review:INC-7"
    with pytest.raises(Refused) as refused:
        rules.check(NoteInput(actor=ALICE, text="late note"))
    assert refused.value.failure == FailureType.ILLEGAL_TRANSITION
    assert "handed over to its post-incident review" in refused.value.message

    rules, _ = _triggered(policy, FakeClock(), Severity.SEV2)
    rules.act(ResolveInput(actor=ALICE), clock.now)
    step = rules.hand_over(clock.now)
    assert _kinds(step) == [EventKind.CLOSED] and rules.s.status == Status.CLOSED
    assert step.events[0].actor == str(INCIDENTFLOW)


def test_a_repeat_coalesces_into_the_last_repeat_event_quietly() -> None:
    clock = FakeClock()
    rules, _ = _triggered(_policy(), clock)
    first = rules.count_repeat(MONITORING, clock.advance(timedelta(seconds=5)))
    second = rules.count_repeat(MONITORING, clock.advance(timedelta(seconds=5)))
    assert first.quiet and second.quiet
    assert second.events == first.events  # the same event, to be written again
    assert first.events[0].details == {"count": 2, "last_at": clock.now.isoformat()}
    assert rules.s.alert_count == 3
    assert [e.kind for e in rules.s.timeline] == [EventKind.TRIGGERED, EventKind.ALERT_REPEATED]


# ---------------------------------------------------------------------------- refusals


def test_check_refuses_what_the_state_forbids_and_rejects_bad_input() -> None:
    clock = FakeClock()
    rules, _ = _triggered(_policy(), clock)
    with pytest.raises(Refused) as refused:
        rules.check(CloseInput(actor=ALICE))
    assert refused.value.failure == FailureType.ILLEGAL_TRANSITION
    assert refused.value.message.startswith("INC-7 is triggered: cannot close; allowed actions:")
    with pytest.raises(Refused) as refused:
        rules.check(AcknowledgeInput(actor=ALICE, number="INC-6"))
    assert refused.value.failure == FailureType.INCIDENT_NOT_FOUND
    for bad, message in [
        (NoteInput(actor=ALICE, text="   "), "text must not be empty"),
        (MergeInput(actor=ALICE, into="INC-7"), "cannot be merged into itself"),
        (ChangeSeverityInput(actor=ALICE, severity=Severity.SEV2), "is already SEV2"),
        (EscalateInput(actor=ALICE, target="alice"), "must be written kind:name"),
    ]:
        with pytest.raises(ValueError, match=message):
            rules.check(bad)
    assert rules.s.timeline[-1].kind == EventKind.TRIGGERED  # nothing was written


# ---------------------------------------------------------------------------- clocks


def test_a_breached_mitigate_clock_escalates_an_acknowledged_incident_again() -> None:
    clock = FakeClock()
    policy = _policy(
        _escalation([10, 10]),
        severities={s: _severity(on_breach=["channel:ops"]) for s in Severity},
    )
    rules, _ = _triggered(policy, clock)
    rules.act(AcknowledgeInput(actor=ALICE), clock.advance(timedelta(minutes=1)))
    step = rules.fire_due(clock.to(T0 + timedelta(minutes=31)))
    assert _kinds(step) == [EventKind.SLA_BREACHED, EventKind.ESCALATED]
    breach, escalated = step.events
    assert breach.details["clock"] == "mitigate" and breach.details["late_by_seconds"] == 60.0
    assert step.effects == [
        Notify(breach, _targets("channel:ops", "user:alice")),
        Page(escalated, 2, _targets("user:l2")),
    ]
    assert escalated.details["reason"] == "mitigate clock breached"


def test_status_update_reminders_recur_for_the_responders() -> None:
    clock = FakeClock()
    policy = _policy(severities={s: _severity(update=timedelta(minutes=15)) for s in Severity})
    rules, _ = _triggered(policy, clock)
    rules.act(AcknowledgeInput(actor=ALICE), clock.advance(timedelta(minutes=1)))
    due = rules.s.deadlines.update
    assert due == clock.now + timedelta(minutes=15)
    step = rules.fire_due(clock.to(due))
    assert _kinds(step) == [EventKind.STATUS_UPDATE_DUE]
    assert step.effects == [Notify(step.events[0], _targets("user:alice"))]
    assert rules.s.deadlines.update == due + timedelta(minutes=15)


# ---------------------------------------------------------------------------- properties

durations = st.integers(min_value=1, max_value=24 * 60).map(lambda m: timedelta(minutes=m))


@settings(max_examples=150, deadline=None)
@given(
    delays=st.lists(st.integers(min_value=1, max_value=120), min_size=1, max_size=5),
    repeat=st.integers(min_value=0, max_value=3),
    extra_fires=st.integers(min_value=0, max_value=3),
)
def test_escalation_pages_every_level_in_turn_and_exhausts_exactly_once(
    delays: list[int], repeat: int, extra_fires: int
) -> None:
    clock = FakeClock()
    far = {s: _severity(ack=FAR, mitigate=FAR, resolve=FAR) for s in Severity}
    rules, step = _triggered(_policy(_escalation(delays, repeat), far), clock)
    pages = _pages(step)
    exhausted = 0
    while (due := rules.next_due()) is not None and due < T0 + FAR:
        fired = rules.fire_due(clock.to(due))
        pages += _pages(fired)
        exhausted += _kinds(fired).count(EventKind.ESCALATION_EXHAUSTED)
        assert rules.s.escalation.loop <= repeat
    for _ in range(extra_fires):  # nothing more once exhausted
        fired = rules.fire_due(clock.advance(timedelta(hours=1)))
        assert fired.events == [] and fired.effects == []
    levels = len(delays)
    assert pages == list(range(1, levels + 1)) * (repeat + 1)  # never skips, never past the end
    assert exhausted == 1
    assert rules.s.escalation.exhausted and not rules.s.escalation.active
    assert rules.s.escalation.max_level == levels


@settings(max_examples=150, deadline=None)
@given(
    delays=st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=4),
    repeat=st.integers(min_value=0, max_value=2),
    ack_after=st.integers(min_value=0, max_value=400),
)
def test_acknowledging_stops_the_escalation_at_any_point(
    delays: list[int], repeat: int, ack_after: int
) -> None:
    clock = FakeClock()
    far = {s: _severity(ack=FAR, mitigate=FAR, resolve=FAR) for s in Severity}
    rules, _ = _triggered(_policy(_escalation(delays, repeat), far), clock)
    ack_at = T0 + timedelta(minutes=ack_after)
    while (due := rules.next_due()) is not None and due <= ack_at:
        rules.fire_due(clock.to(due))
    level = rules.s.escalation.level
    rules.act(AcknowledgeInput(actor=ALICE), clock.to(ack_at))
    assert rules.s.deadlines.next_escalation is None
    fired = rules.fire_due(clock.advance(timedelta(days=1)))
    assert _pages(fired) == [] and rules.s.escalation.level == level


@settings(max_examples=200, deadline=None)
@given(
    acks=st.tuples(durations, durations),
    mitigates=st.tuples(durations, durations),
    resolves=st.tuples(durations, durations),
    updates=st.tuples(durations, durations),
    reopened=st.booleans(),
    change_after=st.integers(min_value=0, max_value=24 * 60),
    acknowledge=st.booleans(),
)
def test_clocks_start_after_their_start_and_severity_changes_retime_from_it(
    acks: tuple[timedelta, timedelta],
    mitigates: tuple[timedelta, timedelta],
    resolves: tuple[timedelta, timedelta],
    updates: tuple[timedelta, timedelta],
    reopened: bool,
    change_after: int,
    acknowledge: bool,
) -> None:
    old, new = Severity.SEV2, Severity.SEV1
    severities = {
        **{s: _severity() for s in Severity},
        old: _severity(acks[0], mitigates[0], resolves[0], updates[0]),
        new: _severity(acks[1], mitigates[1], resolves[1], updates[1]),
    }
    clock = FakeClock()
    rules, _ = _triggered(_policy(severities=severities), clock, old)
    s = rules.s
    start = s.created_at
    if reopened:
        rules.act(ResolveInput(actor=ALICE), clock.advance(timedelta(minutes=1)))
        rules.reopen(MONITORING, "fired again", clock.advance(timedelta(minutes=1)))
        start = clock.now
        assert s.reopened_at == start
    d = s.deadlines
    for deadline in (d.ack, d.mitigate, d.resolve):
        assert deadline is not None and deadline > start  # never before its start
    if acknowledge:
        rules.act(AcknowledgeInput(actor=ALICE), clock.advance(timedelta(seconds=30)))
        assert d.ack is None  # met: the ack clock stopped
        assert d.update is not None and d.update > clock.now
    rules.act(
        ChangeSeverityInput(actor=ALICE, severity=new),
        clock.advance(timedelta(minutes=change_after)),
    )
    sp = severities[new]
    assert d.mitigate == start + sp.mitigate_within
    assert d.resolve == start + sp.resolve_within
    if acknowledge:
        assert d.ack is None  # a met clock is not restarted
        assert s.acknowledged_at is not None and sp.update_every is not None
        assert d.update == s.acknowledged_at + sp.update_every
    else:
        assert d.ack == start + sp.ack_within
    # fire everything due for a long while: the ack clock of an acknowledged incident never
    # breaches, every other clock breaches at most once
    breaches = [
        e.details["clock"]
        for e in rules.fire_due(clock.advance(timedelta(days=3))).events
        if e.kind == EventKind.SLA_BREACHED
    ]
    assert len(breaches) == len(set(breaches))
    assert ("ack" in breaches) == (not acknowledge)
    assert all(b.deadline <= b.at for b in s.breaches)


def test_rules_never_touch_the_instant_they_are_not_given() -> None:
    """Two runs with the same instants write the same timeline: nothing reads a clock."""
    timelines = []
    for _ in range(2):
        clock = FakeClock()
        rules, _ = _triggered(_policy(), clock)
        rules.fire_due(clock.advance(timedelta(minutes=10)))
        rules.act(AcknowledgeInput(actor=ALICE), clock.advance(timedelta(minutes=1)))
        timelines.append([e.model_dump() for e in rules.s.timeline])
    assert timelines[0] == timelines[1]
    assert [e["kind"] for e in timelines[0]] == [
        EventKind.TRIGGERED,
        EventKind.ESCALATED,  # escalation fires before the breaches of the same instant
        EventKind.SLA_BREACHED,
        EventKind.ACKNOWLEDGED,
    ]
