"""IncidentWorkflow: one durable run per incident.

Reading order follows the lifecycle in DESIGN.md: ``run`` triggers (number, ticket, level 1),
then keeps the clocks (SLA deadlines, escalation, status-update reminders) as absolute
instants until the incident is closed; every responder action is an Update whose
validator rejects an illegal transition before anything reaches history.

State lives in one serialisable snapshot (``self.s``) so continue-as-new carries it whole.
Ticket writes are batched by a background loop (``_sync_tickets``): many quick changes make
one ``record_incident`` activity, not one each. Notifications run as background activities:
the incident never waits on a mail server to advance.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from schemas import search_attributes as sa
    from schemas.actions import (
        AcknowledgeInput,
        ActionInput,
        AlertClear,
        AlertRepeat,
        AssignInput,
        CancelInput,
        ChangeSeverityInput,
        CloseInput,
        EscalateInput,
        InvestigateInput,
        MergeInput,
        MitigateInput,
        NoteInput,
        ReopenInput,
        ResolveInput,
        StatusUpdateInput,
    )
    from schemas.activity_io import (
        ALLOCATE_INCIDENT_NUMBER,
        NOTIFY,
        RECORD_INCIDENT,
        AllocateNumberInput,
        NotifyInput,
        NotifyResult,
        RecordIncidentInput,
    )
    from schemas.actors import (
        INCIDENTFLOW,
        MONITORING,
        RESERVED_NAMES,
        Actor,
        ActorKind,
        Person,
    )
    from schemas.classification import priority_for, severity_for
    from schemas.enums import Action, Clock, EventKind, Role, Status, TargetKind
    from schemas.failures import FailureType
    from schemas.incident import (
        Alert,
        Breach,
        EscalationState,
        IncidentRef,
        IncidentSnapshot,
        IncidentStart,
        TimelineEvent,
    )
    from schemas.lifecycle import (
        HANDS_ON,
        acknowledges,
        handed_over,
        is_legal,
        next_status,
        rejection_message,
        review_pending_message,
        takes_command,
    )
    from schemas.policy import EscalationTarget, SeverityPolicy
    from workflows.review import PostIncidentReviewWorkflow, ReviewStart
    from workflows.waiting import wait_or_time_out

TICKET_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
)
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=12,
)

#: patch: only a person acknowledges or takes command (``schemas.lifecycle``); before it, any
#: actor but "monitoring" acknowledged and only the acknowledging person became commander
TYPED_ACTORS = "typed-actors"
#: patch: ``close`` on a review-required incident starts its review at once; before it, the
#: incident closed and its review was never scheduled
CLOSE_STARTS_REVIEW = "close-starts-review"

#: how many recent alert ids a run remembers to recognise resent triggers
RECENT_ALERT_IDS = 2000

#: how long a finishing run waits for notifications still being retried
DRAIN_NOTIFICATIONS = timedelta(seconds=60)


def _open(status: Status) -> bool:
    return status not in (Status.RESOLVED, Status.CLOSED)


@workflow.defn
class IncidentWorkflow:
    @workflow.init
    def __init__(self, start: IncidentStart) -> None:
        self.policy = start.policy
        self.start_alert = start.alert
        self.s = start.carried or self._new_snapshot(start.alert)
        #: events not yet written to PostgreSQL, by seq (a coalesced event is re-queued)
        self._unsynced: dict[int, TimelineEvent] = {}
        self._ticket_dirty = False
        self._wake = 0
        self._notifications: set[asyncio.Task[None]] = set()
        self._finished = False
        #: set once the incident is handed over (reopen window passed, or closed while its
        #: review is required): later alerts start a new incident, actions are refused
        self._handing_over = False
        #: set when this run is about to continue-as-new: new alerts go to the next run
        self._continuing = False
        #: alert ids already counted (bounded, oldest first), carried across continue-as-new
        self._alert_ids: dict[str, None] = dict.fromkeys(start.alert_ids)
        if start.carried is None and start.alert.alert_id:
            self._alert_ids[start.alert.alert_id] = None

    # ------------------------------------------------------------------ main loop
    @workflow.run
    async def run(self, start: IncidentStart) -> IncidentSnapshot:
        info = workflow.info()
        self.s.workflow_id = info.workflow_id
        self.s.run_id = info.run_id
        if start.carried is None:
            self.s.number = await workflow.execute_activity(
                ALLOCATE_INCIDENT_NUMBER,
                AllocateNumberInput(workflow_id=info.workflow_id, run_id=info.run_id),
                result_type=str,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=TICKET_RETRY,
            )
            alert = start.alert
            event = self._append(
                EventKind.TRIGGERED,
                alert.actor,
                {"source": alert.source, "dedup_key": alert.dedup_key, "title": alert.title},
            )
            self._start_clocks(self.s.created_at)
            self._page_level(1, event)
        self._upsert_search_attributes()
        sync = asyncio.create_task(self._sync_tickets())

        continue_as_new = False
        while self.s.status != Status.CLOSED:
            if self._handing_over:
                break  # ``close`` handed the incident over to its review
            if self._should_continue_as_new():
                continue_as_new = True
                self._continuing = True
                break
            if self.s.status == Status.RESOLVED and self._reopen_window_passed():
                self._handing_over = True
                await self._hand_over()
                break
            seen = self._wake
            due = self._next_due()
            timeout = None if due is None else max(0.0, (due - workflow.now()).total_seconds())
            if timeout is None or timeout > 0:
                try:
                    await wait_or_time_out(
                        lambda seen=seen: (  # type: ignore[misc]
                            self._wake != seen or self._should_continue_as_new()
                        ),
                        timeout,
                    )
                except TimeoutError:
                    pass
            self._fire_due()

        # Drain: handlers, notifications and the last ticket write finish before we leave.
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._notifications:
            # Bounded: a new alert for this key waits for this run to end (ingest retries),
            # so a mail server that is down must not hold the key for the whole retry budget.
            try:
                await wait_or_time_out(lambda: not self._notifications, DRAIN_NOTIFICATIONS)
            except TimeoutError:
                pass
            if self._notifications:
                workflow.logger.warning("closing with notifications still being retried")
        self._finished = True
        await sync
        # a close accepted while draining for continue-as-new handed over to the review:
        # the review owns the incident now, so this run ends instead of continuing
        if continue_as_new and not self._handing_over:
            workflow.continue_as_new(
                IncidentStart(
                    alert=self.start_alert,
                    policy=self.policy,
                    carried=self.s,
                    alert_ids=list(self._alert_ids),
                )
            )
        return self.s.summary()

    def _should_continue_as_new(self) -> bool:
        """Continue-as-new when the server suggests it and no notification is in flight
        (an activity still running when the run ends would lose its result)."""
        return workflow.info().is_continue_as_new_suggested() and not self._notifications

    # ------------------------------------------------------------------ queries
    @workflow.query
    def state(self) -> IncidentSnapshot:
        return self.s

    # ------------------------------------------------------------------ ingestion
    @workflow.update
    async def ingest_alert(self, alert: Alert) -> IncidentRef:
        """Trigger by update-with-start: the first alert creates, later ones repeat or reopen."""
        await workflow.wait_condition(lambda: bool(self.s.number))
        if alert.alert_id and alert.alert_id == self.start_alert.alert_id:
            return self._ref(created=True)
        if alert.alert_id in self._alert_ids:
            return self._ref(created=False)  # a resend of an alert already counted
        if alert.alert_id:
            self._alert_ids[alert.alert_id] = None
            while len(self._alert_ids) > RECENT_ALERT_IDS:
                del self._alert_ids[next(iter(self._alert_ids))]
        if self.s.status == Status.CLOSED:
            raise ApplicationError(f"{self.s.number} is closed", type=FailureType.INCIDENT_CLOSED)
        if self.s.status == Status.RESOLVED:
            self._reopen(alert.actor, f"alert fired again: {alert.title}")
            return self._ref(created=False, reopened=True)
        self._count_repeat(alert.actor, alert.occurred_at)
        return self._ref(created=False)

    @ingest_alert.validator
    def _validate_ingest(self, alert: Alert) -> None:
        if self.s.status == Status.CLOSED or self._handing_over:
            raise ApplicationError(f"{self.s.number} is closed", type=FailureType.INCIDENT_CLOSED)
        if self._continuing:
            # the client retries; the alert lands in the next run, counted once
            raise ApplicationError(
                f"{self.s.number} is moving to a new run; retry", type=FailureType.INCIDENT_CLOSED
            )

    @workflow.signal
    def alert_repeated(self, repeat: AlertRepeat) -> None:
        if _open(self.s.status):
            self._count_repeat(MONITORING, repeat.at)

    @workflow.signal
    def alert_cleared(self, clear: AlertClear) -> None:
        if not _open(self.s.status) or self.s.alert_cleared:
            return
        self.s.alert_cleared = True
        self._append(EventKind.ALERT_CLEARED, clear.actor, {})
        if self.policy.auto_resolve:
            self._transition(Action.RESOLVE, clear.actor, {"resolution": "alert cleared"})

    # ------------------------------------------------------------------ lifecycle updates
    @workflow.update
    async def acknowledge(self, a: AcknowledgeInput) -> IncidentSnapshot:
        return self._act(Action.ACKNOWLEDGE, a, {"note": a.note} if a.note else {})

    @acknowledge.validator
    def _v_acknowledge(self, a: AcknowledgeInput) -> None:
        self._check(Action.ACKNOWLEDGE, a)

    @workflow.update
    async def investigate(self, a: InvestigateInput) -> IncidentSnapshot:
        return self._act(Action.INVESTIGATE, a, {"note": a.note} if a.note else {})

    @investigate.validator
    def _v_investigate(self, a: InvestigateInput) -> None:
        self._check(Action.INVESTIGATE, a)

    @workflow.update
    async def mitigate(self, a: MitigateInput) -> IncidentSnapshot:
        return self._act(Action.MITIGATE, a, {"note": a.note} if a.note else {})

    @mitigate.validator
    def _v_mitigate(self, a: MitigateInput) -> None:
        self._check(Action.MITIGATE, a)

    @workflow.update
    async def resolve(self, a: ResolveInput) -> IncidentSnapshot:
        return self._act(Action.RESOLVE, a, {"resolution": a.resolution} if a.resolution else {})

    @resolve.validator
    def _v_resolve(self, a: ResolveInput) -> None:
        self._check(Action.RESOLVE, a)

    @workflow.update
    async def close(self, a: CloseInput) -> IncidentSnapshot:
        """Close; where the severity requires a review, hand over to it now instead: the
        incident stays resolved until the review is completed or waived, which closes it."""
        details = {"reason": a.reason} if a.reason else {}
        if self._severity_policy().review_required:
            self._guard(Action.CLOSE, a)
            if workflow.patched(CLOSE_STARTS_REVIEW):
                self._handing_over = True
                await self._start_review(a.actor, details)
                return self.s.summary()
        return self._act(Action.CLOSE, a, details)

    @close.validator
    def _v_close(self, a: CloseInput) -> None:
        self._check(Action.CLOSE, a)

    @workflow.update
    async def cancel(self, a: CancelInput) -> IncidentSnapshot:
        """False alarm: closes without review."""
        self.s.close_reason = f"cancelled: {a.reason}"
        return self._act(Action.CANCEL, a, {"reason": a.reason})

    @cancel.validator
    def _v_cancel(self, a: CancelInput) -> None:
        self._check(Action.CANCEL, a, text=a.reason)

    @workflow.update
    async def merge_into(self, a: MergeInput) -> IncidentSnapshot:
        self.s.merged_into = a.into
        self.s.close_reason = f"duplicate of {a.into}"
        return self._act(Action.MERGE_INTO, a, {"into": a.into})

    @merge_into.validator
    def _v_merge_into(self, a: MergeInput) -> None:
        self._check(Action.MERGE_INTO, a)
        if a.into == self.s.number:
            raise ValueError(f"{self.s.number} cannot be merged into itself")

    @workflow.update
    async def reopen(self, a: ReopenInput) -> IncidentSnapshot:
        self._guard(Action.REOPEN, a)
        self._reopen(a.actor, a.reason or "")
        return self.s.summary()

    @reopen.validator
    def _v_reopen(self, a: ReopenInput) -> None:
        self._check(Action.REOPEN, a)

    # ------------------------------------------------------------------ other updates
    @workflow.update
    async def assign(self, a: AssignInput) -> IncidentSnapshot:
        self._guard(Action.ASSIGN, a)
        self.s.responders[a.role] = a.user
        self._participant_name(a.user)
        self._append(EventKind.ASSIGNED, a.actor, {"role": a.role.value, "user": a.user})
        return self.s.summary()

    @assign.validator
    def _v_assign(self, a: AssignInput) -> None:
        self._check(Action.ASSIGN, a, text=a.user)

    @workflow.update
    async def change_severity(self, a: ChangeSeverityInput) -> IncidentSnapshot:
        self._guard(Action.CHANGE_SEVERITY, a)
        old = self.s.severity
        self.s.severity = a.severity
        self._retime_clocks()
        event = self._append(
            EventKind.SEVERITY_CHANGED,
            a.actor,
            {"from": old.value, "to": a.severity.value, "reason": a.reason or ""},
        )
        self._notify(event, self._current_level_targets())
        return self.s.summary()

    @change_severity.validator
    def _v_change_severity(self, a: ChangeSeverityInput) -> None:
        self._check(Action.CHANGE_SEVERITY, a)
        if a.severity == self.s.severity:
            raise ValueError(f"{self.s.number} is already {a.severity.value}")

    @workflow.update
    async def add_note(self, a: NoteInput) -> IncidentSnapshot:
        self._guard(Action.ADD_NOTE, a)
        self._append(EventKind.NOTE_ADDED, a.actor, {"text": a.text})
        return self.s.summary()

    @add_note.validator
    def _v_add_note(self, a: NoteInput) -> None:
        self._check(Action.ADD_NOTE, a, text=a.text)

    @workflow.update
    async def post_status_update(self, a: StatusUpdateInput) -> IncidentSnapshot:
        self._guard(Action.POST_STATUS_UPDATE, a)
        now = workflow.now()
        self.s.last_status_update_at = now
        self._append(EventKind.STATUS_UPDATE_POSTED, a.actor, {"text": a.text})
        sp = self._severity_policy()
        if sp.update_every is not None:
            self.s.deadlines.update = now + sp.update_every
        return self.s.summary()

    @post_status_update.validator
    def _v_post_status_update(self, a: StatusUpdateInput) -> None:
        self._check(Action.POST_STATUS_UPDATE, a, text=a.text)

    @workflow.update
    async def escalate(self, a: EscalateInput) -> IncidentSnapshot:
        """Manual escalation: page a named target now, or the next level of the policy."""
        self._guard(Action.ESCALATE, a)
        self._participant(a.actor)
        if a.target:
            target = EscalationTarget.model_validate(a.target)
            event = self._append(
                EventKind.ESCALATED,
                a.actor,
                {"targets": [str(target)], "manual": True, "reason": a.reason or ""},
            )
            self._notify(event, [target])
        else:
            self._advance_escalation(a.actor, manual=True, reason=a.reason or "")
        return self.s.summary()

    @escalate.validator
    def _v_escalate(self, a: EscalateInput) -> None:
        self._check(Action.ESCALATE, a)
        if a.target:
            EscalationTarget.model_validate(a.target)

    # ------------------------------------------------------------------ validation helpers
    def _check(self, action: Action, a: ActionInput, *, text: str | None = None) -> None:
        """Validator body shared by every Update: reject before anything is written."""
        if not a.actor.name.strip():
            raise ValueError("actor is required")
        if text is not None and not text.strip():
            raise ValueError("text must not be empty")
        if a.number is not None and a.number != self.s.number:
            raise ApplicationError(
                f"{a.number} is not open under this alert key (now {self.s.number})",
                type=FailureType.INCIDENT_NOT_FOUND,
            )
        self._check_legal(action)

    def _check_legal(self, action: Action) -> None:
        if self.s.review_workflow_id and handed_over(self.s.status, self.s.review_workflow_id):
            raise ApplicationError(
                review_pending_message(self.s.number, action, self.s.review_workflow_id),
                type=FailureType.ILLEGAL_TRANSITION,
            )
        if not is_legal(action, self.s.status):
            raise ApplicationError(
                rejection_message(self.s.number, action, self.s.status),
                type=FailureType.ILLEGAL_TRANSITION,
            )

    def _guard(self, action: Action, a: ActionInput) -> None:
        """Re-check in the handler: two Updates accepted in one task both passed validation."""
        self._check_legal(action)
        self._participant(a.actor)

    def _act(self, action: Action, a: ActionInput, details: dict[str, Any]) -> IncidentSnapshot:
        self._guard(action, a)
        self._transition(action, a.actor, details)
        return self.s.summary()

    # ------------------------------------------------------------------ transitions
    def _transition(self, action: Action, actor: Actor, details: dict[str, Any]) -> None:
        now = workflow.now()
        self.s.status = next_status(action, self.s.status)
        d = self.s.deadlines
        kind = {
            Action.ACKNOWLEDGE: EventKind.ACKNOWLEDGED,
            Action.INVESTIGATE: EventKind.INVESTIGATING,
            Action.MITIGATE: EventKind.MITIGATED,
            Action.RESOLVE: EventKind.RESOLVED,
            Action.CLOSE: EventKind.CLOSED,
            Action.CANCEL: EventKind.CANCELLED,
            Action.MERGE_INTO: EventKind.MERGED,
        }[action]
        acknowledging = self.s.acknowledged_at is None and self._acknowledges(action, actor)
        if acknowledging:
            # stops escalation and meets the ack clock
            self.s.acknowledged_at = now
            d.ack = None
            self._stop_escalation()
            sp = self._severity_policy()
            if sp.update_every is not None and d.update is None:
                d.update = now + sp.update_every
        if Role.COMMANDER not in self.s.responders and self._takes_command(
            action, actor, acknowledging
        ):
            self.s.responders[Role.COMMANDER] = actor.name
        if action in (Action.MITIGATE, Action.RESOLVE) and self.s.mitigated_at is None:
            self.s.mitigated_at = now
            d.mitigate = None
        if action == Action.RESOLVE:
            self.s.resolved_at = now
            d.ack = None  # resolved unacknowledged (an alert cleared): neither met nor breached
            d.resolve = None
            d.update = None
            self._stop_escalation()
        if self.s.status == Status.CLOSED:
            self.s.closed_at = now
            d.ack = d.mitigate = d.resolve = d.update = None
            self._stop_escalation()
        event = self._append(kind, actor, details)
        if kind in (EventKind.ACKNOWLEDGED, EventKind.MITIGATED, EventKind.RESOLVED):
            self._notify(event, self._paged_targets())

    def _acknowledges(self, action: Action, actor: Actor) -> bool:
        typed = acknowledges(action, actor)
        legacy = action in HANDS_ON and actor != MONITORING
        if typed == legacy:
            return typed
        return typed if workflow.patched(TYPED_ACTORS) else legacy

    def _takes_command(self, action: Action, actor: Actor, acknowledging: bool) -> bool:
        typed = takes_command(action, actor)
        legacy = acknowledging and actor.kind == ActorKind.PERSON
        if typed == legacy:
            return typed
        return typed if workflow.patched(TYPED_ACTORS) else legacy

    def _reopen(self, actor: Actor, reason: str) -> None:
        now = workflow.now()
        self.s.status = Status.TRIGGERED
        self.s.reopened_at = now
        self.s.reopen_count += 1
        self.s.alert_cleared = False
        self.s.acknowledged_at = self.s.mitigated_at = self.s.resolved_at = None
        self.s.escalation.level = 0
        self.s.escalation.loop = 0
        self.s.escalation.exhausted = False
        self.s.escalation.active = True
        event = self._append(EventKind.REOPENED, actor, {"reason": reason})
        self._start_clocks(now)
        self._page_level(1, event)

    def _count_repeat(self, actor: Actor, at: datetime | None) -> None:
        """Repeats bump the count; consecutive repeats coalesce into one timeline event."""
        self.s.alert_count += 1
        last = self.s.timeline[-1] if self.s.timeline else None
        if last is not None and last.kind == EventKind.ALERT_REPEATED:
            last.details["count"] = int(last.details.get("count", 1)) + 1
            last.details["last_at"] = workflow.now().isoformat()
            self._unsynced[last.seq] = last
            self._ticket_dirty = True
        else:
            self._append(
                EventKind.ALERT_REPEATED,
                actor,
                {"count": 1, "last_at": workflow.now().isoformat()},
                wake=False,
            )

    # ------------------------------------------------------------------ clocks
    def _severity_policy(self) -> SeverityPolicy:
        return self.policy.severities[self.s.severity]

    def _start_clocks(self, since: datetime) -> None:
        sp = self._severity_policy()
        d = self.s.deadlines
        d.ack = since + sp.ack_within
        d.mitigate = since + sp.mitigate_within
        d.resolve = since + sp.resolve_within
        d.update = None

    def _retime_clocks(self) -> None:
        """Re-time pending clocks after a severity change, from when each clock started."""
        sp = self._severity_policy()
        since = self.s.reopened_at or self.s.created_at
        d = self.s.deadlines
        if d.ack is not None:
            d.ack = since + sp.ack_within
        if d.mitigate is not None:
            d.mitigate = since + sp.mitigate_within
        if d.resolve is not None:
            d.resolve = since + sp.resolve_within
        if d.update is not None:
            last = self.s.last_status_update_at or self.s.acknowledged_at or since
            d.update = last + sp.update_every if sp.update_every else None
        self._wake += 1

    def _next_due(self) -> datetime | None:
        d = self.s.deadlines
        if self.s.status == Status.RESOLVED:
            return self._reopen_deadline()
        candidates = [t for t in (d.ack, d.mitigate, d.resolve, d.update, d.next_escalation) if t]
        return min(candidates) if candidates else None

    def _reopen_deadline(self) -> datetime | None:
        if self.s.resolved_at is None:
            return None
        return self.s.resolved_at + self.policy.reopen_window

    def _reopen_window_passed(self) -> bool:
        deadline = self._reopen_deadline()
        return deadline is not None and workflow.now() >= deadline

    def _fire_due(self) -> None:
        """Act on every clock whose instant has passed."""
        now = workflow.now()
        d = self.s.deadlines
        if d.next_escalation is not None and d.next_escalation <= now:
            d.next_escalation = None
            self._advance_escalation(INCIDENTFLOW)
        for clock in (Clock.ACK, Clock.MITIGATE, Clock.RESOLVE):
            deadline = d.get(clock)
            if deadline is not None and deadline <= now:
                setattr(d, clock.value, None)
                self._breach(clock, deadline, now)
        if d.update is not None and d.update <= now:
            sp = self._severity_policy()
            d.update = now + sp.update_every if sp.update_every else None
            event = self._append(
                EventKind.STATUS_UPDATE_DUE,
                INCIDENTFLOW,
                {
                    "last_update_at": self.s.last_status_update_at.isoformat()
                    if self.s.last_status_update_at
                    else None
                },
            )
            self._notify(event, self._responder_targets())

    def _breach(self, clock: Clock, deadline: datetime, now: datetime) -> None:
        late = (now - deadline).total_seconds()
        self.s.breaches.append(Breach(clock=clock, deadline=deadline, at=now, late_by_seconds=late))
        event = self._append(
            EventKind.SLA_BREACHED,
            INCIDENTFLOW,
            {"clock": clock.value, "deadline": deadline.isoformat(), "late_by_seconds": late},
        )
        targets = list(self._severity_policy().on_breach)
        if clock == Clock.ACK:
            targets += self._responder_targets()
        else:
            targets += self._responder_targets() or self._paged_targets()
        self._notify(event, targets)
        if clock == Clock.MITIGATE and self.s.status in (
            Status.ACKNOWLEDGED,
            Status.INVESTIGATING,
        ):
            # PagerDuty's ack timeout: acknowledged but not mitigated in time escalates again.
            self.s.escalation.active = True
            self.s.escalation.exhausted = False
            self._advance_escalation(INCIDENTFLOW, reason="mitigate clock breached")

    # ------------------------------------------------------------------ escalation
    def _page_level(self, level: int, event: TimelineEvent) -> None:
        esc = self.s.escalation
        esc.level = level
        esc.max_level = max(esc.max_level, level)
        spec = esc.policy.levels[level - 1]
        self.s.deadlines.next_escalation = workflow.now() + spec.delay if esc.active else None
        self._notify(event, list(spec.targets))

    def _advance_escalation(self, actor: Actor, *, manual: bool = False, reason: str = "") -> None:
        esc = self.s.escalation
        if not manual and (not esc.active or esc.exhausted):
            return
        levels = esc.policy.levels
        nxt = esc.level + 1
        if nxt > len(levels):
            if esc.loop < esc.policy.repeat or manual:
                esc.loop += 0 if manual else 1
                nxt = 1
            else:
                esc.exhausted = True
                esc.active = False
                self.s.deadlines.next_escalation = None
                event = self._append(
                    EventKind.ESCALATION_EXHAUSTED,
                    actor,
                    {"levels": len(levels), "loops": esc.loop + 1},
                )
                self._notify(event, list(levels[-1].targets))
                return
        spec = levels[nxt - 1]
        event = self._append(
            EventKind.ESCALATED,
            actor,
            {
                "level": nxt,
                "loop": esc.loop,
                "targets": [str(t) for t in spec.targets],
                "manual": manual,
                "reason": reason,
            },
        )
        self._page_level(nxt, event)

    def _stop_escalation(self) -> None:
        self.s.escalation.active = False
        self.s.deadlines.next_escalation = None

    def _current_level_targets(self) -> list[EscalationTarget]:
        esc = self.s.escalation
        if esc.level == 0:
            return []
        return list(esc.policy.levels[esc.level - 1].targets)

    def _paged_targets(self) -> list[EscalationTarget]:
        """Everyone paged so far (levels 1..max): they hear that the incident moved on."""
        esc = self.s.escalation
        seen: dict[str, EscalationTarget] = {}
        for spec in esc.policy.levels[: max(esc.max_level, esc.level)]:
            for t in spec.targets:
                seen.setdefault(str(t), t)
        return list(seen.values())

    def _responder_targets(self) -> list[EscalationTarget]:
        names = [
            self.s.responders[r] for r in (Role.COMMANDER, Role.ASSIGNEE) if r in self.s.responders
        ]
        return [EscalationTarget(kind=TargetKind.USER, name=n) for n in dict.fromkeys(names)]

    # ------------------------------------------------------------------ review hand-over
    async def _hand_over(self) -> None:
        """After the reopen window: a review where the severity requires one, else close."""
        if self._severity_policy().review_required:
            await self._start_review(INCIDENTFLOW, {})
        else:
            self._transition(Action.CLOSE, INCIDENTFLOW, {"reason": "reopen window passed"})

    async def _start_review(self, actor: Actor, details: dict[str, Any]) -> None:
        """Start the review (an abandoned child that outlives this run); it closes the
        incident when it is completed or waived."""
        sp = self._severity_policy()
        review_id = f"review:{self.s.number}"
        self.s.review_workflow_id = review_id
        self._append(EventKind.REVIEW_SCHEDULED, actor, {"workflow_id": review_id, **details})
        await workflow.start_child_workflow(
            PostIncidentReviewWorkflow.run,
            ReviewStart(
                incident=self.s.summary(),
                review_after=sp.review_after,
                review=self.policy.review,
            ),
            id=review_id,
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
        )

    # ------------------------------------------------------------------ bookkeeping
    def _new_snapshot(self, alert: Alert) -> IncidentSnapshot:
        priority = priority_for(alert.impact, alert.urgency)
        return IncidentSnapshot(
            title=alert.title,
            description=alert.description,
            service=alert.service,
            severity=alert.severity or severity_for(priority),
            priority=priority,
            impact=alert.impact,
            urgency=alert.urgency,
            category=alert.category,
            labels=alert.labels,
            details=alert.details,
            links=alert.links,
            dedup_key=alert.dedup_key,
            source=alert.source,
            created_at=workflow.now(),
            escalation=EscalationState(policy=self.policy.escalation),
        )

    def _append(
        self, kind: EventKind, actor: Actor, details: dict[str, Any], *, wake: bool = True
    ) -> TimelineEvent:
        self.s.last_seq += 1
        event = TimelineEvent(
            seq=self.s.last_seq, at=workflow.now(), actor=str(actor), kind=kind, details=details
        )
        self.s.timeline.append(event)
        self._unsynced[event.seq] = event
        self._ticket_dirty = True
        if wake:
            self._wake += 1
            self._upsert_search_attributes()
        return event

    def _participant(self, actor: Actor) -> None:
        if isinstance(actor, Person):
            self._participant_name(actor.name)

    def _participant_name(self, name: str) -> None:
        """A person named by an action (an assignee); reserved names are never a person's."""
        if name and name not in self.s.participants and name not in RESERVED_NAMES:
            self.s.participants.append(name)

    def _ref(self, *, created: bool, reopened: bool = False) -> IncidentRef:
        return IncidentRef(
            number=self.s.number,
            workflow_id=self.s.workflow_id,
            run_id=self.s.run_id,
            created=created,
            reopened=reopened,
            alert_count=self.s.alert_count,
            status=self.s.status,
        )

    def _upsert_search_attributes(self) -> None:
        if not self.s.number:
            return
        wanted = {
            sa.INCIDENT_STATUS: self.s.status.value,
            sa.INCIDENT_SEVERITY: self.s.severity.value,
            sa.INCIDENT_SERVICE: self.s.service,
            sa.INCIDENT_PRIORITY: self.s.priority.value,
            sa.INCIDENT_NUMBER: self.s.number,
        }
        current = workflow.info().typed_search_attributes
        updates = [k.value_set(v) for k, v in wanted.items() if current.get(k) != v]
        if updates:
            workflow.upsert_search_attributes(updates)

    def _notify(self, event: TimelineEvent, targets: list[EscalationTarget]) -> None:
        """Send in the background; failures come back as ``notification_failed`` events."""
        unique = list({str(t): t for t in targets}.values())
        if not unique:
            return
        task = asyncio.create_task(self._deliver(event, unique))
        self._notifications.add(task)
        task.add_done_callback(self._notifications.discard)

    async def _deliver(self, event: TimelineEvent, targets: list[EscalationTarget]) -> None:
        try:
            result = await workflow.execute_activity(
                NOTIFY,
                NotifyInput(incident=self.s.summary(), event=event, targets=targets),
                result_type=NotifyResult,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=NOTIFY_RETRY,
            )
        except ActivityError as err:
            cause = str(err.cause) if err.cause is not None else str(err)
            self._append(
                EventKind.NOTIFICATION_FAILED,
                INCIDENTFLOW,
                {"event_seq": event.seq, "targets": [str(t) for t in targets], "reason": cause},
                wake=False,
            )
            return
        for failure in result.failed:
            self._append(
                EventKind.NOTIFICATION_FAILED,
                INCIDENTFLOW,
                {"event_seq": event.seq, **failure.model_dump()},
                wake=False,
            )

    async def _sync_tickets(self) -> None:
        """Write the ticket row and new events, batching whatever piled up meanwhile."""
        while True:
            await workflow.wait_condition(lambda: self._ticket_dirty or self._finished)
            if not self._ticket_dirty:
                return
            events = [self._unsynced[k] for k in sorted(self._unsynced)]
            self._unsynced.clear()
            self._ticket_dirty = False
            await workflow.execute_activity(
                RECORD_INCIDENT,
                RecordIncidentInput(
                    snapshot=self.s.summary(), events=[e.model_copy(deep=True) for e in events]
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=TICKET_RETRY,
            )
