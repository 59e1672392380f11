"""The policy simulator: what the policy would do to one incident, without a server.

It runs the workflow's own rules (``IncidentRules``) on the snapshot a live trigger starts
with (``IncidentSnapshot.for_alert``, ``IncidentPolicy.of``), driven by a simulated clock
through ``next_due`` / ``fire_due`` exactly as ``IncidentWorkflow`` drives them with
timers, so a simulation and a live incident cannot disagree. On top of the rules' output
it resolves who each page reaches (on-call rotations and overrides at that instant, the
same ``schemas.oncall``), the SLA deadlines in wall-clock and business time, and when the
review would be booked.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

from schemas.actions import AcknowledgeInput
from schemas.actors import Person
from schemas.enums import Clock, Severity, TargetKind
from schemas.incident import Alert, IncidentPolicy, IncidentSnapshot, TimelineEvent
from schemas.incident_rules import IncidentRules, Page, Step
from schemas.oncall import on_call
from schemas.policy import EscalationTarget, Policy
from schemas.review_schedule import review_start, review_zone

#: who acknowledges in a simulation (``--ack-after``)
SIMULATED_RESPONDER = "responder"
#: a runaway loop guard: no real policy comes near it
MAX_STEPS = 1000


class SimulatedPage(BaseModel):
    at: datetime
    level: int
    loop: int = 0
    targets: list[str]
    #: who that reaches at that instant: users (schedules resolved), ``channel:<name>``
    reaches: list[str]


class SimulatedClock(BaseModel):
    clock: Clock
    target: timedelta
    calendar: str
    #: the deadline as set at the trigger (``None``: the clock does not run)
    deadline: datetime | None
    #: wall-clock time from the trigger to the deadline (``target`` is the business time)
    wall: timedelta | None
    #: met (acknowledged in time), breached, or neither within the simulation
    outcome: str = ""


class Simulation(BaseModel):
    service: str
    severity: Severity
    at: datetime
    ack_after: timedelta | None = None
    clocks: list[SimulatedClock]
    pages: list[SimulatedPage]
    #: every event the rules wrote, as the incident's timeline would show it
    timeline: list[TimelineEvent] = Field(default_factory=list)
    #: when the review meeting would be booked were it resolved at its resolve deadline
    review_at: datetime | None = None
    review_zone: str | None = None


def reaches(policy: Policy, targets: list[EscalationTarget], at: datetime) -> list[str]:
    """Whom ``targets`` reach at ``at``: users as named, schedules as whoever is on call."""
    names: list[str] = []
    for target in targets:
        if target.kind == TargetKind.USER:
            names.append(target.name)
        elif target.kind == TargetKind.SCHEDULE:
            schedule = policy.schedule(target.name)
            names += on_call(schedule, at) if schedule is not None else []
        else:
            names.append(str(target))
    return list(dict.fromkeys(names))


def simulate(
    policy: Policy,
    service_name: str,
    severity: Severity,
    at: datetime,
    *,
    ack_after: timedelta | None = None,
    title: str = "simulated incident",
) -> Simulation:
    """Trigger at ``at``, acknowledge after ``ack_after`` (never when ``None``), and run
    every clock until the last SLA deadline set at the trigger has passed."""
    service = policy.service(service_name)
    if service is None:
        known = ", ".join(s.name for s in policy.services)
        raise ValueError(f"unknown service {service_name!r}; known services: {known}")
    at = at.astimezone(UTC)
    incident_policy = IncidentPolicy.of(policy, service)
    alert = Alert(service=service.name, title=title, severity=severity, source="simulation")
    snapshot = IncidentSnapshot.for_alert(alert, incident_policy.escalation, at)
    snapshot.number = "INC-SIM"
    rules = IncidentRules(snapshot, incident_policy)
    pages: list[SimulatedPage] = []

    def record(step: Step) -> None:
        for effect in step.effects:
            if isinstance(effect, Page):
                pages.append(
                    SimulatedPage(
                        at=effect.event.at,
                        level=effect.level,
                        loop=snapshot.escalation.loop,
                        targets=[str(t) for t in effect.targets],
                        reaches=reaches(policy, effect.targets, effect.event.at),
                    )
                )

    details = {"source": alert.source, "dedup_key": alert.dedup_key, "title": alert.title}
    record(rules.trigger(alert.actor, details, at))
    clocks = _clocks(rules, at)
    horizon = max((c.deadline for c in clocks if c.deadline is not None), default=at)
    ack_at = at + ack_after if ack_after is not None else None
    for _ in range(MAX_STEPS):
        due = rules.next_due()
        if ack_at is not None and (due is None or ack_at <= due):
            now, ack_at = ack_at, None
            ack = AcknowledgeInput(actor=Person(name=SIMULATED_RESPONDER))
            if rules.is_open() and snapshot.acknowledged_at is None:
                rules.guard(ack)
                record(rules.act(ack, now))
            continue
        if due is None or due > horizon:
            break
        record(rules.fire_due(due))
    breached = {b.clock for b in snapshot.breaches}
    for c in clocks:
        if c.clock in breached:
            c.outcome = "breached"
        elif c.clock == Clock.ACK and snapshot.acknowledged_at is not None:
            c.outcome = "met"
    review_at, zone = None, None
    sp = incident_policy.severities[severity]
    resolve_by = rules.s.deadlines.resolve or next(
        (c.deadline for c in clocks if c.clock == Clock.RESOLVE), None
    )
    if sp.review_required and resolve_by is not None:
        review = incident_policy.review or policy.review_policy()
        review_at = review_start(resolve_by, sp.review_after, review)
        zone = review_zone(review)[0]
    return Simulation(
        service=service.name,
        severity=severity,
        at=at,
        ack_after=ack_after,
        clocks=clocks,
        pages=pages,
        timeline=list(snapshot.timeline),
        review_at=review_at,
        review_zone=zone,
    )


def _clocks(rules: IncidentRules, at: datetime) -> list[SimulatedClock]:
    """The SLA clocks as the trigger set them."""
    out = []
    for clock in (Clock.ACK, Clock.MITIGATE, Clock.RESOLVE):
        target = rules.within(clock)
        deadline = rules.s.deadlines.get(clock)
        assert target is not None
        out.append(
            SimulatedClock(
                clock=clock,
                target=target,
                calendar=rules.calendar(clock).name,
                deadline=deadline,
                wall=deadline - at if deadline is not None else None,
            )
        )
    return out
