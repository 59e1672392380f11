"""The incident's rules, without Temporal: what each action, alert and clock does to the
snapshot, and what must happen because of it.

``IncidentRules`` works on one ``IncidentSnapshot`` under its ``IncidentPolicy``. Each
method is given the instant (the workflow passes ``workflow.now()``, a test a fake clock),
changes the snapshot and returns a :class:`Step`: the timeline events it wrote and the
effects the workflow must carry out, in order (pages and notifications to send, the review
to start). Nothing here reads a clock, does I/O or knows about Temporal, so the rules run in
unit tests in microseconds; ``workflows.incident`` is the shell that waits, fires and runs
the effects.

The order of events and effects is the order the workflow issues its commands in: recorded
histories replay only as long as it stays the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.actions import (
    ACTION_SPECS,
    AcknowledgeInput,
    ActionInput,
    AssignInput,
    CancelInput,
    ChangeSeverityInput,
    CloseInput,
    EscalateInput,
    InvestigateInput,
    LinkInput,
    MergeInput,
    MitigateInput,
    NoteInput,
    PauseInput,
    ReopenInput,
    ResolveInput,
    ResumeInput,
    StatusUpdateInput,
    UnlinkInput,
)
from schemas.actors import INCIDENTFLOW, MONITORING, RESERVED_NAMES, Actor, ActorKind, Person
from schemas.calendars import (
    Calendar,
    Interval,
    add_business_time,
    business_time_between,
    is_working,
    next_working_instant,
)
from schemas.enums import Action, Clock, EventKind, Role, Status, StatusPhase, TargetKind
from schemas.failures import FailureType
from schemas.incident import (
    Breach,
    IncidentLink,
    IncidentPolicy,
    IncidentSnapshot,
    Pause,
    PausedSpan,
    TimelineEvent,
)
from schemas.lifecycle import (
    HANDS_ON,
    OPEN_STATUSES,
    TRANSITIONS,
    acknowledges,
    handed_over,
    is_legal,
    next_status,
    rejection_message,
    review_pending_message,
    takes_command,
)
from schemas.policy import EscalationLevel, EscalationTarget, SeverityPolicy

# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Page:
    """Page the targets of an escalation level about ``event``."""

    event: TimelineEvent
    level: int
    targets: list[EscalationTarget]


@dataclass(frozen=True)
class Notify:
    """Tell ``targets`` about ``event`` (responders, everyone paged so far, breach targets)."""

    event: TimelineEvent
    targets: list[EscalationTarget]


@dataclass(frozen=True)
class StartReview:
    """Start the post-incident review (workflow ``workflow_id``); it closes the incident."""

    workflow_id: str
    review_after: int


@dataclass(frozen=True)
class Publish:
    """Put a public status update ``event`` on the status page's subscribers' mail."""

    event: TimelineEvent


Effect = Page | Notify | StartReview | Publish


@dataclass
class Step:
    """What one rule did: the events it wrote (in order) and the effects to carry out."""

    events: list[TimelineEvent] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    #: the events change nothing the main loop waits on or the search attributes show
    #: (a repeated alert): they are only written to the ticket
    quiet: bool = False


class Refused(Exception):
    """An action the incident refuses in its current state; the workflow raises it as an
    ``ApplicationError`` of type ``failure``."""

    def __init__(self, failure: FailureType, message: str) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message


# ---------------------------------------------------------------------------- tables

#: the event each status-changing action writes notifies everyone paged so far
TELLS_THE_PAGED: frozenset[EventKind] = frozenset(
    {EventKind.ACKNOWLEDGED, EventKind.MITIGATED, EventKind.RESOLVED}
)

#: the longest pause with ``until`` (a longer wait is paused without one)
MAX_PAUSE = timedelta(days=366)

#: the action each Update input stands for (every action has its own input type)
ACTION_OF: dict[type[ActionInput], Action] = {
    spec.input_type: spec.action for spec in ACTION_SPECS.values()
}


def required_text(a: ActionInput) -> str | None:
    """The free text an action cannot do without (``None``: it has none)."""
    if isinstance(a, CancelInput | PauseInput):
        return a.reason
    if isinstance(a, AssignInput):
        return a.user
    if isinstance(a, NoteInput | StatusUpdateInput):
        return a.text
    return None


def status_update_details(a: StatusUpdateInput) -> dict[str, Any]:
    """The ``status_update_posted`` event's details: the text, and for a public update its
    phase and component status (what the status page reads back from PostgreSQL)."""
    details: dict[str, Any] = {"text": a.text}
    if a.public:
        details["public"] = True
        details["phase"] = (a.phase or StatusPhase.INVESTIGATING).value
    elif a.phase is not None:
        details["phase"] = a.phase.value
    if a.component_status is not None:
        details["component_status"] = a.component_status.value
    return details


def _user(name: str) -> EscalationTarget:
    return EscalationTarget(kind=TargetKind.USER, name=name)


def event_details(a: ActionInput) -> dict[str, Any]:
    """The details of the event a status-changing action writes."""
    if isinstance(a, AcknowledgeInput | InvestigateInput | MitigateInput):
        return {"note": a.note} if a.note else {}
    if isinstance(a, ResolveInput):
        return {"resolution": a.resolution} if a.resolution else {}
    if isinstance(a, CloseInput):
        return {"reason": a.reason} if a.reason else {}
    if isinstance(a, CancelInput):
        return {"reason": a.reason}
    if isinstance(a, MergeInput):
        return {"into": a.into}
    return {}


# ---------------------------------------------------------------------------- actors


def acknowledged_before_typed_actors(action: Action, actor: Actor) -> bool:
    """The rule of incidents started before the ``typed-actors`` patch: any hands-on action
    by anyone but monitoring acknowledged."""
    return action in HANDS_ON and actor != MONITORING


def took_command_before_typed_actors(actor: Actor, acknowledging: bool) -> bool:
    """The rule before ``typed-actors``: only the acknowledging person became commander."""
    return acknowledging and actor.kind == ActorKind.PERSON


#: answers whether the typed-actor rules apply (the workflow asks ``workflow.patched``);
#: asked only where they and the earlier rules disagree
TypedActors = Callable[[], bool]
#: answers whether clocks count in their calendars and levels honour ``when`` (the workflow
#: asks ``workflow.patched``); asked only where a calendar or a pause makes a difference
CalendarClocks = Callable[[], bool]


def _always() -> bool:
    return True


#: answers whether stakeholders and role holders are told (the ``stakeholder-notices`` patch);
#: asked only where telling them adds a notification
TellsStakeholders = Callable[[], bool]


# ---------------------------------------------------------------------------- rules


class IncidentRules:
    """The rules of one incident over its snapshot ``s`` and its policy."""

    def __init__(
        self,
        s: IncidentSnapshot,
        policy: IncidentPolicy,
        typed_actors: TypedActors = _always,
        calendar_clocks: CalendarClocks = _always,
        tells_stakeholders: TellsStakeholders = _always,
    ) -> None:
        self.s = s
        self.policy = policy
        self._typed_actors = typed_actors
        self._calendar_clocks = calendar_clocks
        self._tells_stakeholders = tells_stakeholders

    # ------------------------------------------------------------------ reading
    def severity_policy(self) -> SeverityPolicy:
        return self.policy.severities[self.s.severity]

    def is_open(self) -> bool:
        return self.s.status in OPEN_STATUSES

    def calendar(self, clock: Clock) -> Calendar:
        """The calendar ``clock`` counts in under the current severity."""
        return self.policy.calendar(self.severity_policy().calendar_for(clock))

    def clock_since(self, clock: Clock) -> datetime:
        """When ``clock`` started: the trigger or reopen (the update clock: the last update)."""
        since = self.s.reopened_at or self.s.created_at
        if clock == Clock.UPDATE:
            return self.s.last_status_update_at or self.s.acknowledged_at or since
        return since

    def paused_spans(self, clock: Clock) -> list[Interval]:
        return [(p.start, p.end) for p in self.s.pauses if clock in p.clocks]

    def deadline(self, clock: Clock, since: datetime, amount: timedelta) -> datetime:
        """``amount`` of ``clock``'s calendar time after ``since``, pauses not counted."""
        calendar = self.calendar(clock)
        paused = self.paused_spans(clock)
        if (calendar.is_always and not paused) or not self._calendar_clocks():
            return since + amount
        return add_business_time(since, amount, calendar, paused)

    def next_due(self) -> datetime | None:
        """The earliest instant a clock fires (the reopen window's end once resolved)."""
        d = self.s.deadlines
        if self.s.status == Status.RESOLVED:
            return self.reopen_deadline()
        candidates = [
            t for t in (d.ack, d.mitigate, d.resolve, d.update, d.next_escalation, d.resume) if t
        ]
        return min(candidates) if candidates else None

    def reopen_deadline(self) -> datetime | None:
        if self.s.resolved_at is None:
            return None
        return self.s.resolved_at + self.policy.reopen_window

    def reopen_window_passed(self, now: datetime) -> bool:
        deadline = self.reopen_deadline()
        return deadline is not None and now >= deadline

    # ------------------------------------------------------------------ validation
    def check(self, a: ActionInput, now: datetime | None = None) -> None:
        """Whether the incident accepts ``a`` (at ``now``, where the input names an instant):
        ``ValueError`` for bad input, :class:`Refused` for an action its state forbids.
        Nothing is changed."""
        action = ACTION_OF[type(a)]
        if not a.actor.name.strip():
            raise ValueError("actor is required")
        text = required_text(a)
        if text is not None and not text.strip():
            raise ValueError("text must not be empty")
        if a.number is not None and a.number != self.s.number:
            raise Refused(
                FailureType.INCIDENT_NOT_FOUND,
                f"{a.number} is not open under this alert key (now {self.s.number})",
            )
        self.check_legal(action)
        if isinstance(a, MergeInput) and a.into == self.s.number:
            raise ValueError(f"{self.s.number} cannot be merged into itself")
        if isinstance(a, ChangeSeverityInput) and a.severity == self.s.severity:
            raise ValueError(f"{self.s.number} is already {a.severity.value}")
        if isinstance(a, EscalateInput) and a.target:
            EscalationTarget.model_validate(a.target)
        if isinstance(a, PauseInput) and self.s.paused is not None:
            raise Refused(
                FailureType.ILLEGAL_TRANSITION,
                f"{self.s.number} is already paused ({self.s.paused.reason}); resume it first",
            )
        if isinstance(a, PauseInput) and a.until is not None and now is not None:
            if a.until <= now:
                raise ValueError("until must be in the future")
            if a.until > now + MAX_PAUSE:
                raise ValueError(f"until must be within {MAX_PAUSE.days} days")
        if isinstance(a, LinkInput | UnlinkInput):
            self._check_link(a)
        if isinstance(a, ResumeInput) and self.s.paused is None:
            raise Refused(
                FailureType.ILLEGAL_TRANSITION,
                f"{self.s.number} is {self.s.status.value} and not paused: nothing to resume",
            )

    def _check_link(self, a: LinkInput | UnlinkInput) -> None:
        if a.other == self.s.number:
            raise ValueError(f"{self.s.number} cannot be linked to itself")
        linked = IncidentLink(kind=a.kind, number=a.other) in self.s.incident_links
        if isinstance(a, LinkInput) and linked:
            raise ValueError(f"{self.s.number} is already {a.kind.value} {a.other}")
        if isinstance(a, UnlinkInput) and not linked:
            raise ValueError(f"{self.s.number} is not {a.kind.value} {a.other}")

    def check_legal(self, action: Action) -> None:
        s = self.s
        if s.review_workflow_id and handed_over(s.status, s.review_workflow_id):
            raise Refused(
                FailureType.ILLEGAL_TRANSITION,
                review_pending_message(s.number, action, s.review_workflow_id),
            )
        if not is_legal(action, s.status):
            raise Refused(
                FailureType.ILLEGAL_TRANSITION, rejection_message(s.number, action, s.status)
            )

    def guard(self, a: ActionInput) -> None:
        """Re-check in the handler (two Updates accepted in one task both passed their
        validators) and count the actor in."""
        self.check_legal(ACTION_OF[type(a)])
        if isinstance(a, PauseInput | ResumeInput | LinkInput | UnlinkInput):
            self.check(a)
        self.participate(a.actor)

    def participate(self, actor: Actor) -> None:
        if isinstance(actor, Person):
            self.participate_name(actor.name)

    def participate_name(self, name: str) -> None:
        """A person named by an action (an assignee); reserved names are never a person's."""
        if name and name not in self.s.participants and name not in RESERVED_NAMES:
            self.s.participants.append(name)

    # ------------------------------------------------------------------ responder actions
    def act(self, a: ActionInput, now: datetime) -> Step:
        """What a responder's action does, once :meth:`guard` let it through."""
        s = self.s
        step = Step()
        if isinstance(a, ReopenInput):
            self._reopen(step, a.actor, a.reason or "", now)
        elif isinstance(a, AssignInput):
            previous = s.responders.get(a.role)
            s.responders[a.role] = a.user
            self.participate_name(a.user)
            details = {"role": a.role.value, "user": a.user}
            if previous is not None and previous != a.user:
                details["previous"] = previous
            event = self._append(step, EventKind.ASSIGNED, a.actor, details, now)
            holders = [a.user] + ([previous] if previous and previous != a.user else [])
            if self._tells_stakeholders():
                step.effects.append(Notify(event, [_user(name) for name in holders]))
        elif isinstance(a, ChangeSeverityInput):
            self._change_severity(step, a, now)
        elif isinstance(a, NoteInput):
            self._append(step, EventKind.NOTE_ADDED, a.actor, {"text": a.text}, now)
        elif isinstance(a, StatusUpdateInput):
            s.last_status_update_at = now
            event = self._append(
                step, EventKind.STATUS_UPDATE_POSTED, a.actor, status_update_details(a), now
            )
            sp = self.severity_policy()
            if sp.update_every is not None and not self._paused(Clock.UPDATE):
                s.deadlines.update = self.deadline(Clock.UPDATE, now, sp.update_every)
            told = self.stakeholder_targets(EventKind.STATUS_UPDATE_POSTED)
            if (told or a.public) and self._tells_stakeholders():
                if told:
                    step.effects.append(Notify(event, told))
                if a.public:
                    step.effects.append(Publish(event))
        elif isinstance(a, LinkInput | UnlinkInput):
            link = IncidentLink(kind=a.kind, number=a.other)
            if isinstance(a, LinkInput):
                s.incident_links.append(link)
            else:
                s.incident_links.remove(link)
            kind = EventKind.LINKED if isinstance(a, LinkInput) else EventKind.UNLINKED
            link_details: dict[str, Any] = {"kind": a.kind.value, "number": a.other}
            if a.inverse:
                link_details["inverse"] = True
            self._append(step, kind, a.actor, link_details, now)
        elif isinstance(a, PauseInput):
            self._pause(step, a, now)
        elif isinstance(a, ResumeInput):
            self._resume(step, a.actor, {"note": a.note} if a.note else {}, now)
        elif isinstance(a, EscalateInput):
            self.participate(a.actor)
            self._escalate_by_hand(step, a, now)
        else:
            if isinstance(a, CancelInput):
                s.close_reason = f"cancelled: {a.reason}"
            elif isinstance(a, MergeInput):
                s.merged_into = a.into
                s.close_reason = f"duplicate of {a.into}"
            self._transition(step, ACTION_OF[type(a)], a.actor, event_details(a), now)
        return step

    def _change_severity(self, step: Step, a: ChangeSeverityInput, now: datetime) -> None:
        old = self.s.severity
        self.s.severity = a.severity
        self.retime_clocks()
        event = self._append(
            step,
            EventKind.SEVERITY_CHANGED,
            a.actor,
            {"from": old.value, "to": a.severity.value, "reason": a.reason or ""},
            now,
        )
        step.effects.append(Notify(event, self.with_stakeholders(event)))

    def _escalate_by_hand(self, step: Step, a: EscalateInput, now: datetime) -> None:
        """Page a named target now, or the next level of the policy."""
        if a.target:
            target = EscalationTarget.model_validate(a.target)
            event = self._append(
                step,
                EventKind.ESCALATED,
                a.actor,
                {"targets": [str(target)], "manual": True, "reason": a.reason or ""},
                now,
            )
            step.effects.append(Notify(event, [target]))
        else:
            self._advance_escalation(step, a.actor, now, manual=True, reason=a.reason or "")

    # ------------------------------------------------------------------ alerts
    def trigger(self, actor: Actor, details: dict[str, Any], now: datetime) -> Step:
        """The first alert: the ``triggered`` event, the clocks from creation, level 1."""
        step = Step()
        event = self._append(step, EventKind.TRIGGERED, actor, details, now)
        self.start_clocks(self.s.created_at)
        self._page_level(step, 1, event, now)
        self._tell_stakeholders(step, event)
        return step

    def reopen(self, actor: Actor, reason: str, now: datetime) -> Step:
        step = Step()
        self._reopen(step, actor, reason, now)
        return step

    def count_repeat(self, actor: Actor, now: datetime) -> Step:
        """Repeats bump the count; consecutive repeats coalesce into one timeline event (the
        step then carries that event again, to be rewritten)."""
        s = self.s
        s.alert_count += 1
        step = Step(quiet=True)
        last = s.timeline[-1] if s.timeline else None
        if last is not None and last.kind == EventKind.ALERT_REPEATED:
            last.details["count"] = int(last.details.get("count", 1)) + 1
            last.details["last_at"] = now.isoformat()
            step.events.append(last)
        else:
            self._append(
                step, EventKind.ALERT_REPEATED, actor, {"count": 1, "last_at": now.isoformat()}, now
            )
        return step

    def clear_alert(self, actor: Actor, now: datetime) -> Step:
        """The monitored condition went away: noted once, and it resolves the incident where
        the service says so."""
        step = Step()
        if not self.is_open() or self.s.alert_cleared:
            return step
        self.s.alert_cleared = True
        self._append(step, EventKind.ALERT_CLEARED, actor, {}, now)
        if self.policy.auto_resolve:
            self._transition(step, Action.RESOLVE, actor, {"resolution": "alert cleared"}, now)
        return step

    def notification_failed(self, details: dict[str, Any], now: datetime) -> Step:
        """A notification that did not reach its targets: written, nothing else."""
        step = Step(quiet=True)
        self._append(step, EventKind.NOTIFICATION_FAILED, INCIDENTFLOW, details, now)
        return step

    # ------------------------------------------------------------------ hand-over
    def hand_over(self, now: datetime) -> Step:
        """After the reopen window: a review where the severity requires one, else close."""
        if self.severity_policy().review_required:
            return self.start_review(INCIDENTFLOW, {}, now)
        step = Step()
        self._transition(step, Action.CLOSE, INCIDENTFLOW, {"reason": "reopen window passed"}, now)
        return step

    def start_review(self, actor: Actor, details: dict[str, Any], now: datetime) -> Step:
        """Hand over to the review (which closes the incident when completed or waived)."""
        step = Step()
        review_id = f"review:{self.s.number}"
        self.s.review_workflow_id = review_id
        self._append(
            step, EventKind.REVIEW_SCHEDULED, actor, {"workflow_id": review_id, **details}, now
        )
        step.effects.append(StartReview(review_id, self.severity_policy().review_after))
        return step

    # ------------------------------------------------------------------ transitions
    def _transition(
        self, step: Step, action: Action, actor: Actor, details: dict[str, Any], now: datetime
    ) -> None:
        """A status-changing action: the table's status and event, and what it does to the
        clocks, the escalation and the responders."""
        s = self.s
        s.status = next_status(action, s.status)
        d = s.deadlines
        acknowledging = s.acknowledged_at is None and self._acknowledges(action, actor)
        if acknowledging:
            # stops escalation and meets the ack clock
            s.acknowledged_at = now
            d.ack = None
            self.stop_escalation()
            sp = self.severity_policy()
            if sp.update_every is not None and d.update is None:
                d.update = self.deadline(Clock.UPDATE, now, sp.update_every)
        if Role.COMMANDER not in s.responders and self._takes_command(action, actor, acknowledging):
            s.responders[Role.COMMANDER] = actor.name
        if action in (Action.MITIGATE, Action.RESOLVE) and s.mitigated_at is None:
            s.mitigated_at = now
            d.mitigate = None
        if action == Action.RESOLVE:
            s.resolved_at = now
            d.ack = None  # resolved unacknowledged (an alert cleared): neither met nor breached
            d.resolve = None
            d.update = None
            self.stop_escalation()
        if s.status == Status.CLOSED:
            s.closed_at = now
            d.ack = d.mitigate = d.resolve = d.update = None
            self.stop_escalation()
        if s.paused is not None and s.status not in OPEN_STATUSES:
            self._end_pause(now)  # resolved or closed: nothing left to resume
        kind = TRANSITIONS[action].event
        event = self._append(step, kind, actor, details, now)
        if kind in TELLS_THE_PAGED:
            step.effects.append(Notify(event, self.with_stakeholders(event, self.paged_targets())))

    def _acknowledges(self, action: Action, actor: Actor) -> bool:
        typed = acknowledges(action, actor)
        legacy = acknowledged_before_typed_actors(action, actor)
        if typed == legacy:
            return typed
        return typed if self._typed_actors() else legacy

    def _takes_command(self, action: Action, actor: Actor, acknowledging: bool) -> bool:
        typed = takes_command(action, actor)
        legacy = took_command_before_typed_actors(actor, acknowledging)
        if typed == legacy:
            return typed
        return typed if self._typed_actors() else legacy

    def _reopen(self, step: Step, actor: Actor, reason: str, now: datetime) -> None:
        s = self.s
        s.status = Status.TRIGGERED
        s.reopened_at = now
        s.reopen_count += 1
        s.alert_cleared = False
        s.acknowledged_at = s.mitigated_at = s.resolved_at = None
        esc = s.escalation
        esc.level = 0
        esc.loop = 0
        esc.exhausted = False
        esc.active = True
        event = self._append(step, EventKind.REOPENED, actor, {"reason": reason}, now)
        self.start_clocks(now)
        self._page_level(step, 1, event, now)
        self._tell_stakeholders(step, event)

    # ------------------------------------------------------------------ clocks
    def within(self, clock: Clock) -> timedelta | None:
        """The severity's target for ``clock``."""
        sp = self.severity_policy()
        return {
            Clock.ACK: sp.ack_within,
            Clock.MITIGATE: sp.mitigate_within,
            Clock.RESOLVE: sp.resolve_within,
            Clock.UPDATE: sp.update_every,
        }[clock]

    def note_calendars(self) -> None:
        """Keep the calendars of the clocks that do not count 24x7 in the snapshot, so every
        surface can count down in business time."""
        calendars = {clock: self.calendar(clock) for clock in Clock}
        self.s.clock_calendars = {c: cal for c, cal in calendars.items() if not cal.is_always}

    def start_clocks(self, since: datetime) -> None:
        sp = self.severity_policy()
        d = self.s.deadlines
        self.note_calendars()
        d.ack = self.deadline(Clock.ACK, since, sp.ack_within)
        d.mitigate = self.deadline(Clock.MITIGATE, since, sp.mitigate_within)
        d.resolve = self.deadline(Clock.RESOLVE, since, sp.resolve_within)
        d.update = None

    def retime_clocks(self) -> None:
        """Re-time pending clocks after a severity change (new targets, new calendars), from
        when each clock started; a paused clock gets the time it would have left."""
        d = self.s.deadlines
        self.note_calendars()
        for clock in Clock:
            within = self.within(clock)
            if d.get(clock) is not None:
                since = self.clock_since(clock)
                setattr(d, clock.value, self.deadline(clock, since, within) if within else None)
        paused = self.s.paused
        if paused is not None:
            for clock in list(paused.left):
                within = self.within(clock)
                if within is None:
                    del paused.left[clock]
                    continue
                used = business_time_between(
                    self.clock_since(clock),
                    paused.since,
                    self.calendar(clock),
                    self.paused_spans(clock),
                )
                paused.left[clock] = (within - used).total_seconds()

    # ------------------------------------------------------------------ pauses
    def _paused(self, clock: Clock) -> bool:
        return self.s.paused is not None and clock in self.s.paused.left

    def _pause(self, step: Step, a: PauseInput, now: datetime) -> None:
        """Stop the clocks the severity pauses, keeping the business time each has left."""
        s = self.s
        d = s.deadlines
        left: dict[Clock, float] = {}
        for clock in self.severity_policy().pause_clocks:
            deadline = d.get(clock)
            if deadline is None:
                continue
            left[clock] = business_time_between(now, deadline, self.calendar(clock)).total_seconds()
            setattr(d, clock.value, None)
        until = a.until if a.until is None or a.until > now else now
        s.paused = Pause(reason=a.reason, actor=str(a.actor), since=now, until=until, left=left)
        d.resume = until
        details = {
            "reason": a.reason,
            "until": until.isoformat() if until else None,
            "clocks": [c.value for c in left],
        }
        self._append(step, EventKind.PAUSED, a.actor, details, now)

    def _resume(self, step: Step, actor: Actor, details: dict[str, Any], now: datetime) -> None:
        """Restart the paused clocks with the business time they had left."""
        pause = self._end_pause(now)
        d = self.s.deadlines
        for clock, seconds in pause.left.items():
            if self._still_counts(clock):
                amount = timedelta(seconds=seconds)
                setattr(d, clock.value, add_business_time(now, amount, self.calendar(clock)))
        paused_for = (now - pause.since).total_seconds()
        details = {"reason": pause.reason, "paused_seconds": paused_for, **details}
        self._append(step, EventKind.RESUMED, actor, details, now)

    def _end_pause(self, now: datetime) -> Pause:
        pause = self.s.paused
        assert pause is not None
        self.s.paused = None
        self.s.deadlines.resume = None
        self.s.pauses.append(
            PausedSpan(start=pause.since, end=now, reason=pause.reason, clocks=list(pause.left))
        )
        return pause

    def _still_counts(self, clock: Clock) -> bool:
        """Whether ``clock`` still has something to measure (not met meanwhile)."""
        s = self.s
        if clock == Clock.MITIGATE:
            return s.mitigated_at is None and s.resolved_at is None
        if clock == Clock.RESOLVE:
            return s.resolved_at is None
        if clock == Clock.UPDATE:
            return self.is_open() and self.severity_policy().update_every is not None
        return s.acknowledged_at is None

    def fire_due(self, now: datetime) -> Step:
        """Act on every clock whose instant has passed."""
        step = Step()
        d = self.s.deadlines
        if d.resume is not None and d.resume <= now and self.s.paused is not None:
            self._resume(step, INCIDENTFLOW, {"until": d.resume.isoformat()}, now)
        if d.next_escalation is not None and d.next_escalation <= now:
            d.next_escalation = None
            if self.s.escalation.held:
                self._release_held(step, now)
            else:
                self._advance_escalation(step, INCIDENTFLOW, now)
        for clock in (Clock.ACK, Clock.MITIGATE, Clock.RESOLVE):
            deadline = d.get(clock)
            if deadline is not None and deadline <= now:
                setattr(d, clock.value, None)
                self._breach(step, clock, deadline, now)
        if d.update is not None and d.update <= now:
            sp = self.severity_policy()
            d.update = (
                self.deadline(Clock.UPDATE, now, sp.update_every) if sp.update_every else None
            )
            last = self.s.last_status_update_at
            event = self._append(
                step,
                EventKind.STATUS_UPDATE_DUE,
                INCIDENTFLOW,
                {"last_update_at": last.isoformat() if last else None},
                now,
            )
            step.effects.append(Notify(event, self.reminder_targets()))
        return step

    def _breach(self, step: Step, clock: Clock, deadline: datetime, now: datetime) -> None:
        late = (now - deadline).total_seconds()
        self.s.breaches.append(Breach(clock=clock, deadline=deadline, at=now, late_by_seconds=late))
        event = self._append(
            step,
            EventKind.SLA_BREACHED,
            INCIDENTFLOW,
            {"clock": clock.value, "deadline": deadline.isoformat(), "late_by_seconds": late},
            now,
        )
        targets = list(self.severity_policy().on_breach)
        if clock == Clock.ACK:
            targets += self.responder_targets()
        else:
            targets += self.responder_targets() or self.paged_targets()
        step.effects.append(Notify(event, targets))
        if clock == Clock.MITIGATE and self.s.status in (
            Status.ACKNOWLEDGED,
            Status.INVESTIGATING,
        ):
            # PagerDuty's ack timeout: acknowledged but not mitigated in time escalates again.
            self.s.escalation.active = True
            self.s.escalation.exhausted = False
            self._advance_escalation(step, INCIDENTFLOW, now, reason="mitigate clock breached")

    # ------------------------------------------------------------------ escalation
    def level_plan(
        self, spec: EscalationLevel, now: datetime
    ) -> tuple[list[EscalationTarget], datetime | None]:
        """Whom a level pages now, or when it may (``levels[].when``): in its calendar's
        working hours its targets; outside them the out-of-hours targets where they apply
        to the severity, else nobody until the hours begin (the instant returned)."""
        if spec.when is None:
            return list(spec.targets), None
        calendar = self.policy.calendar(spec.when)
        if calendar.is_always or not self._calendar_clocks() or is_working(now, calendar):
            return list(spec.targets), None
        ooh = spec.out_of_hours
        if ooh is not None and ooh.pages(self.s.severity):
            return list(ooh.targets), None
        return [], next_working_instant(now, calendar)

    def _page_level(
        self,
        step: Step,
        level: int,
        event: TimelineEvent,
        now: datetime,
        targets: list[EscalationTarget] | None = None,
    ) -> None:
        """Page ``level`` (``targets``: already planned) and time the next one; a level
        outside its calendar's hours is held until they begin instead."""
        esc = self.s.escalation
        esc.level = level
        esc.max_level = max(esc.max_level, level)
        spec = esc.policy.levels[level - 1]
        if targets is None:
            targets, held_until = self.level_plan(spec, now)
            if held_until is not None:
                self._hold(step, level, spec, held_until, now)
                return
        esc.held = False
        self.s.deadlines.next_escalation = now + spec.delay if esc.active else None
        step.effects.append(Page(event, level, targets))

    def _hold(
        self, step: Step, level: int, spec: EscalationLevel, until: datetime, now: datetime
    ) -> None:
        esc = self.s.escalation
        esc.level = level
        esc.held = True
        self.s.deadlines.next_escalation = until if esc.active else None
        details = {"level": level, "calendar": spec.when, "until": until.isoformat()}
        self._append(step, EventKind.ESCALATION_HELD, INCIDENTFLOW, details, now)

    def _release_held(self, step: Step, now: datetime) -> None:
        """The held level's working hours began: page it now."""
        esc = self.s.escalation
        esc.held = False
        spec = esc.policy.levels[esc.level - 1]
        targets, held_until = self.level_plan(spec, now)
        if held_until is not None:
            self._hold(step, esc.level, spec, held_until, now)
            return
        event = self._append(
            step,
            EventKind.ESCALATED,
            INCIDENTFLOW,
            {
                "level": esc.level,
                "loop": esc.loop,
                "targets": [str(t) for t in targets],
                "manual": False,
                "reason": f"working hours of {spec.when} began",
            },
            now,
        )
        self._page_level(step, esc.level, event, now, targets)

    def _advance_escalation(
        self, step: Step, actor: Actor, now: datetime, *, manual: bool = False, reason: str = ""
    ) -> None:
        """The next level (after the last: level 1 again while loops remain, else the
        escalation is exhausted). By hand it always pages, looping without counting."""
        esc = self.s.escalation
        if not manual and (not esc.active or esc.exhausted):
            return
        levels = esc.policy.levels
        nxt = esc.level + 1
        if manual and esc.held:
            nxt = esc.level  # by hand, a held level pages now whatever its calendar says
        if nxt > len(levels):
            if esc.loop < esc.policy.repeat or manual:
                esc.loop += 0 if manual else 1
                nxt = 1
            else:
                esc.exhausted = True
                esc.active = False
                self.s.deadlines.next_escalation = None
                event = self._append(
                    step,
                    EventKind.ESCALATION_EXHAUSTED,
                    actor,
                    {"levels": len(levels), "loops": esc.loop + 1},
                    now,
                )
                step.effects.append(Notify(event, list(levels[-1].targets)))
                return
        spec = levels[nxt - 1]
        targets, held_until = (list(spec.targets), None) if manual else self.level_plan(spec, now)
        if held_until is not None:
            self._hold(step, nxt, spec, held_until, now)
            return
        event = self._append(
            step,
            EventKind.ESCALATED,
            actor,
            {
                "level": nxt,
                "loop": esc.loop,
                "targets": [str(t) for t in targets],
                "manual": manual,
                "reason": reason,
            },
            now,
        )
        self._page_level(step, nxt, event, now, targets)

    def stop_escalation(self) -> None:
        self.s.escalation.active = False
        self.s.escalation.held = False
        self.s.deadlines.next_escalation = None

    # ------------------------------------------------------------------ targets
    def current_level_targets(self) -> list[EscalationTarget]:
        esc = self.s.escalation
        if esc.level == 0:
            return []
        return list(esc.policy.levels[esc.level - 1].targets)

    def paged_targets(self) -> list[EscalationTarget]:
        """Everyone paged so far (levels 1..max): they hear that the incident moved on."""
        esc = self.s.escalation
        seen: dict[str, EscalationTarget] = {}
        for spec in esc.policy.levels[: max(esc.max_level, esc.level)]:
            for t in spec.targets:
                seen.setdefault(str(t), t)
        return list(seen.values())

    def stakeholder_targets(self, kind: EventKind) -> list[EscalationTarget]:
        """Whom the policy's stakeholder rules tell about ``kind`` at today's severity."""
        seen: dict[str, EscalationTarget] = {}
        for rule in self.policy.stakeholders:
            if rule.covers(self.s.service) and rule.tells(kind, self.s.severity):
                for t in rule.targets:
                    seen.setdefault(str(t), t)
        return list(seen.values())

    def with_stakeholders(
        self, event: TimelineEvent, targets: list[EscalationTarget] | None = None
    ) -> list[EscalationTarget]:
        """``targets`` (default: the current level) plus the stakeholders of ``event``."""
        base = self.current_level_targets() if targets is None else targets
        told = self.stakeholder_targets(event.kind)
        if told and self._tells_stakeholders():
            return base + told
        return base

    def _tell_stakeholders(self, step: Step, event: TimelineEvent) -> None:
        """A notice (not a page) to the stakeholders of ``event``."""
        told = self.stakeholder_targets(event.kind)
        if told and self._tells_stakeholders():
            step.effects.append(Notify(event, told))

    def reminder_targets(self) -> list[EscalationTarget]:
        """Who is reminded that a status update is due: the communications lead once one is
        assigned, else the commander and assignee."""
        comms = self.s.responders.get(Role.COMMUNICATIONS)
        if comms is not None and self._tells_stakeholders():
            return [_user(comms)]
        return self.responder_targets()

    def responder_targets(self) -> list[EscalationTarget]:
        s = self.s
        names = [s.responders[r] for r in (Role.COMMANDER, Role.ASSIGNEE) if r in s.responders]
        return [_user(n) for n in dict.fromkeys(names)]

    # ------------------------------------------------------------------ timeline
    def _append(
        self, step: Step, kind: EventKind, actor: Actor, details: dict[str, Any], now: datetime
    ) -> TimelineEvent:
        self.s.last_seq += 1
        event = TimelineEvent(
            seq=self.s.last_seq, at=now, actor=str(actor), kind=kind, details=details
        )
        self.s.timeline.append(event)
        step.events.append(event)
        return event
