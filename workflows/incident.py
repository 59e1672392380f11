"""IncidentWorkflow: one durable run per incident, the Temporal shell around its rules.

What an action, an alert or a clock does to the incident is decided by
``schemas.incident_rules`` (pure, tested without Temporal); this workflow waits, fires and
carries out what the rules return: it writes their events to the ticket and the search
attributes and sends their pages and notifications.

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
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from schemas import search_attributes as sa
    from schemas import telemetry
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
    from schemas.activity_io import (
        ALLOCATE_INCIDENT_NUMBER,
        MAIL_SUBSCRIBERS,
        OPEN_INCIDENT,
        RECORD_INCIDENT,
        SYNC_SLACK,
        AllocateNumberInput,
        PublishInput,
        PublishResult,
        RecordIncidentInput,
        SyncSlackInput,
        SyncSlackResult,
    )
    from schemas.actors import MONITORING
    from schemas.enums import EventKind, Role, Status
    from schemas.failures import FailureType
    from schemas.incident import (
        Alert,
        AlertSignal,
        IncidentRef,
        IncidentSnapshot,
        IncidentStart,
        TimelineEvent,
    )
    from schemas.incident_rules import (
        IncidentRules,
        Notify,
        Page,
        Publish,
        Refused,
        StartReview,
        Step,
        event_details,
    )
    from schemas.lifecycle import OPEN_STATUSES
    from schemas.policy import EscalationTarget
    from workflows.common import (
        NOTIFY_HEARTBEATS,
        SEND_RETRY,
        TICKET_RETRY,
        Background,
        notify_posting,
        wait_until_due,
    )
    from workflows.review import PostIncidentReviewWorkflow, ReviewStart
    from workflows.waiting import INVARIANT_WAITS, wait_or_time_out

#: patch: only a person acknowledges or takes command (``schemas.lifecycle``); before it, any
#: actor but "monitoring" acknowledged and only the acknowledging person became commander
TYPED_ACTORS = "typed-actors"
#: patch: ``close`` on a review-required incident starts its review at once; before it, the
#: incident closed and its review was never scheduled
CLOSE_STARTS_REVIEW = "close-starts-review"
#: patch: alerts also arrive by signal (``alert_received``, the integrations' fast path); a
#: run that ends holding alerts it could no longer count continues as new to count them
#: (the same incident's next run, or a new incident for the key when this one closed)
ALERT_SIGNALS = "alert-signals"
#: patch: a new incident's number comes from the activity that writes its first ticket row
#: and events (``open_incident``): one activity and one workflow task fewer than
#: ``allocate_incident_number`` then the first ``record_incident``
OPEN_IN_ONE_WRITE = "open-in-one-write"
#: patch: clocks count in their severity's calendar (business hours) and around pauses,
#: and an escalation level limited to a calendar (``levels[].when``) waits for its hours;
#: before it every clock ran 24x7 from the trigger and every level paged at once
SLA_CALENDARS = "sla-calendars"
#: patch: the pause and resume Updates (the clocks stop and resume with the time left)
SLA_PAUSE = "sla-pause"
#: patch: with the policy's Slack app (``IncidentPolicy.slack``) the incident keeps its bot
#: pages current, opens and feeds its own channel and archives it (``sync_slack``)
SLACK_SYNC = "slack-sync"
#: patch: the Slack loop finishes before the run's last ticket write, and a channel it opens
#: or archives is written to the ticket; before it, the ticket could miss the channel and a
#: Slack failure found while closing
SLACK_IN_TICKET = "slack-in-ticket"
#: patch: stakeholders hear status updates and the lifecycle events the policy names, public
#: updates go to the status page's subscribers, ``assign`` tells the new and the previous
#: holder, and reminders go to the communications lead once one is assigned; before it,
#: status updates reached no one and assignments were told to nobody
STAKEHOLDER_NOTICES = "stakeholder-notices"
#: patch: the link and unlink Updates (relations to other incidents, the other one keeping
#: the inverse through its own Update)
INCIDENT_LINKS = "incident-links"
#: patch: every patch of this workflow above (and the shared ``notify-heartbeats`` and
#: ``python-invariant-waits``) at once. A run started by this code asks it first and then
#: takes them all, recording one marker and one ``TemporalChangeVersion`` upsert where it
#: recorded one per patch it reached: each upsert is a visibility write on the server, and a
#: new incident reached three before its first page (README, "Benchmarks").
#: Runs recorded before it do not have its marker and replay through each patch as before.
#: A later patch is asked on its own (``workflow.patched``), not bundled into this one.
PATCHES_2026_11 = "patches-2026-11"
#: what :data:`PATCHES_2026_11` stands for; ``_patched`` refuses any other id, since a run
#: that took the bundle before a later patch existed must replay that patch's old branch
BUNDLED_2026_11 = frozenset(
    {
        TYPED_ACTORS,
        CLOSE_STARTS_REVIEW,
        ALERT_SIGNALS,
        OPEN_IN_ONE_WRITE,
        SLA_CALENDARS,
        SLA_PAUSE,
        SLACK_SYNC,
        SLACK_IN_TICKET,
        STAKEHOLDER_NOTICES,
        INCIDENT_LINKS,
        NOTIFY_HEARTBEATS,
        INVARIANT_WAITS,
    }
)

#: how many recent alert ids a run remembers to recognise resent triggers
RECENT_ALERT_IDS = 2000
#: how many recent responder Update ids a run remembers (carried across continue-as-new), so
#: an Update resent with its id after the run moved on is recognised, not refused with 409
RECENT_ACTION_IDS = 500

#: how long a finishing run waits for notifications still being retried
DRAIN_NOTIFICATIONS = timedelta(seconds=60)


@workflow.defn
class IncidentWorkflow:
    @workflow.init
    def __init__(self, start: IncidentStart) -> None:
        # first, before anything asks a patch: see PATCHES_2026_11
        self._bundled = workflow.patched(PATCHES_2026_11)
        self.policy = start.policy
        self.start_alert = start.alert
        self.s = start.carried or self._new_snapshot(start.alert)
        self.rules = IncidentRules(
            self.s,
            self.policy,
            typed_actors=lambda: self._patched(TYPED_ACTORS),
            calendar_clocks=lambda: self._patched(SLA_CALENDARS),
            tells_stakeholders=lambda: self._patched(STAKEHOLDER_NOTICES),
        )
        #: events not yet written to PostgreSQL, by seq (a coalesced event is re-queued)
        self._unsynced: dict[int, TimelineEvent] = {}
        self._ticket_dirty = False
        self._wake = 0
        self._notifications = Background()
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
        #: signalled alerts waiting to be counted (before the number is allocated, or after
        #: this run stopped counting: closing, handing over, continuing as new): the first in
        #: full, the rest as a count of repeats
        self._queued = start.queued
        self._queued_repeats = start.queued_repeats
        #: ids of the responder Updates applied lately (bounded, oldest first), carried
        self._action_ids: dict[str, None] = dict.fromkeys(start.action_ids)
        #: a clear that arrived before the trigger step
        self._early_clear: AlertClear | None = None
        #: Slack (docs/slack.md): what the bot's pages show, whether they are behind it,
        #: timeline events not yet posted to the incident channel, a channel that failed
        self._slack_view = self._slack_now()
        self._slack_stale = False
        self._slack_events: list[TimelineEvent] = []
        self._slack_channel_failed = False
        #: the run is ending: the Slack loop does what is due, then ends
        self._slack_draining = False
        #: users paged so far, and those already invited to the incident channel
        self._slack_paged: list[str] = []
        self._slack_invited: set[str] = set()

    def _patched(self, patch_id: str) -> bool:
        """``workflow.patched`` for this workflow's patches: true at once in a run that took
        the :data:`PATCHES_2026_11` bundle, asked one by one in a run recorded before it."""
        if patch_id not in BUNDLED_2026_11:
            raise ValueError(f"{patch_id!r} is not in patches-2026-11: ask workflow.patched")
        return self._bundled or workflow.patched(patch_id)

    # ------------------------------------------------------------------ main loop
    @workflow.run
    async def run(self, start: IncidentStart) -> IncidentSnapshot:
        info = workflow.info()
        self.s.workflow_id = info.workflow_id
        self.s.run_id = info.run_id
        if start.carried is None:
            alert = start.alert
            details = {"source": alert.source, "dedup_key": alert.dedup_key, "title": alert.title}
            if self._patched(OPEN_IN_ONE_WRITE):
                # the trigger's events and clocks first (they need no number), written with
                # the number in one activity; its pages go out once the number is known
                step = self.rules.trigger(alert.actor, details, workflow.now())
                self.s.number = await workflow.execute_activity(
                    OPEN_INCIDENT,
                    RecordIncidentInput(
                        snapshot=self.s.summary(),
                        events=[e.model_copy(deep=True) for e in step.events],
                    ),
                    result_type=str,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=TICKET_RETRY,
                )
                self._apply(step, written=True)
            else:
                self.s.number = await workflow.execute_activity(
                    ALLOCATE_INCIDENT_NUMBER,
                    AllocateNumberInput(workflow_id=info.workflow_id, run_id=info.run_id),
                    result_type=str,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=TICKET_RETRY,
                )
                self._apply(self.rules.trigger(alert.actor, details, workflow.now()))
            telemetry.incident_started(
                workflow.metric_meter(), severity=self.s.severity.value, source=alert.source
            )
        self._upsert_search_attributes()
        sync = asyncio.create_task(self._sync_tickets())
        self._count_queued()
        if self._early_clear is not None:
            self._apply(self.rules.clear_alert(self._early_clear.actor, workflow.now()))
        slack = asyncio.create_task(self._sync_slack()) if self.policy.slack else None

        continue_as_new = False
        while self.s.status != Status.CLOSED:
            if self._handing_over:
                break  # ``close`` handed the incident over to its review
            if self._should_continue_as_new():
                continue_as_new = True
                self._continuing = True
                break
            if self.s.status == Status.RESOLVED and self.rules.reopen_window_passed(workflow.now()):
                self._handing_over = True
                await self._run(self.rules.hand_over(workflow.now()))
                break
            await wait_until_due(self.rules.next_due(), self._woken(), patched=self._patched)
            now = workflow.now()
            escalation_due = self.s.deadlines.next_escalation
            self._apply(self.rules.fire_due(now))
            if escalation_due is not None and escalation_due <= now:
                # a metric adds no command to the history, and is not recorded on replay
                lateness = (now - escalation_due).total_seconds()
                telemetry.escalation_lateness(workflow.metric_meter(), lateness)

        # Drain: handlers, notifications and the last ticket write finish before we leave.
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._notifications:
            # Bounded: a new alert for this key waits for this run to end (ingest retries),
            # so a mail server that is down must not hold the key for the whole retry budget.
            try:
                await wait_or_time_out(
                    lambda: not self._notifications, DRAIN_NOTIFICATIONS, patched=self._patched
                )
            except TimeoutError:
                pass
            if self._notifications:
                workflow.logger.warning("closing with notifications still being retried")
        if slack is not None and self._patched(SLACK_IN_TICKET):
            self._slack_draining = True
            await slack
            slack = None
        self._finished = True
        await sync
        if slack is not None:
            await slack
        # No await from here on: an alert signalled after this point makes the server refuse
        # this task's completion, and the retried task sees it in ``_queued``.
        # a close accepted while draining for continue-as-new handed over to the review:
        # the review owns the incident now, so this run ends instead of continuing
        if continue_as_new and not self._handing_over:
            workflow.continue_as_new(
                IncidentStart(
                    alert=self.start_alert,
                    policy=self.policy,
                    carried=self.s,
                    alert_ids=list(self._alert_ids),
                    queued=self._queued,
                    queued_repeats=self._queued_repeats,
                    action_ids=list(self._action_ids),
                )
            )
        if self._queued is not None and self._patched(ALERT_SIGNALS):
            # closed or handed over with alerts signalled meanwhile: the first opens the
            # key's next incident (a new number), the rest count against it
            first = self._queued
            workflow.continue_as_new(
                IncidentStart(
                    alert=first.alert,
                    policy=first.policy,
                    alert_ids=list(self._alert_ids),
                    queued_repeats=self._queued_repeats,
                ),
                search_attributes=sa.at_start(first.alert),
            )
        return self.s.summary()

    def _woken(self) -> Callable[[], bool]:
        """A condition that turns true once anything changes from now on, or once the run
        should continue as new."""
        seen = self._wake
        return lambda: self._wake != seen or self._should_continue_as_new()

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
        self._remember(alert)
        if self.s.status == Status.CLOSED:
            raise ApplicationError(f"{self.s.number} is closed", type=FailureType.INCIDENT_CLOSED)
        return self._count(alert)

    @workflow.signal
    def alert_received(self, sent: AlertSignal) -> None:
        """Trigger by signal-with-start (the fast path: the sender is answered once Temporal
        holds the signal). Counted now when this run counts alerts; otherwise queued and
        carried, so an alert is never lost and, by its id, never counted twice."""
        alert = sent.alert
        if alert.alert_id and (
            alert.alert_id == self.start_alert.alert_id or alert.alert_id in self._alert_ids
        ):
            return  # the start's own alert, or a resend
        self._remember(alert)
        if self._queued is None:
            self._queued = sent
        else:
            self._queued_repeats += 1
        self._count_queued()

    def _counts_alerts(self) -> bool:
        """Whether an alert arriving now counts against this run's incident."""
        return (
            bool(self.s.number)
            and self.s.status != Status.CLOSED
            and not (self._handing_over or self._continuing or self._finished)
        )

    def _count_queued(self) -> None:
        """Count what arrived while this run could not (the previous run's too)."""
        if not self._counts_alerts():
            return
        actor = self.start_alert.actor
        if self._queued is not None:
            actor = self._queued.alert.actor
            self._count(self._queued.alert)
            self._queued = None
        for _ in range(self._queued_repeats):
            self._apply(self.rules.count_repeat(actor, workflow.now()))
        self._queued_repeats = 0

    def _remember(self, alert: Alert) -> None:
        if alert.alert_id:
            self._alert_ids[alert.alert_id] = None
            while len(self._alert_ids) > RECENT_ALERT_IDS:
                del self._alert_ids[next(iter(self._alert_ids))]

    def _count(self, alert: Alert) -> IncidentRef:
        """A repeat of the open incident's alert, or a reopen of a resolved one."""
        if self.s.status == Status.RESOLVED:
            reason = f"alert fired again: {alert.title}"
            self._apply(self.rules.reopen(alert.actor, reason, workflow.now()))
            return self._ref(created=False, reopened=True)
        self._apply(self.rules.count_repeat(alert.actor, workflow.now()))
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
        if not self.s.number and self._patched(ALERT_SIGNALS):
            self._queued_repeats += 1  # before the trigger: counted right after it
            return
        if self.rules.is_open():
            self._apply(self.rules.count_repeat(MONITORING, workflow.now()))

    @workflow.signal
    def alert_cleared(self, clear: AlertClear) -> None:
        if not self.s.number and self._patched(ALERT_SIGNALS):
            # the fast path answers before the trigger step: a clear sent right after the
            # alert (a flapping check) applies after it, never before
            self._early_clear = clear
            return
        self._apply(self.rules.clear_alert(clear.actor, workflow.now()))

    # ------------------------------------------------------------------ responder updates
    # One Update per action, each with its name and input type (``schemas.actions``); the
    # rules decide what it does (``schemas.incident_rules``). Temporal wants each validator
    # with its Update's exact signature, so each is a line that calls ``_validate``.
    @workflow.update
    async def acknowledge(self, a: AcknowledgeInput) -> IncidentSnapshot:
        return self._act(a)

    @acknowledge.validator
    def _v_acknowledge(self, a: AcknowledgeInput) -> None:
        self._validate(a)

    @workflow.update
    async def investigate(self, a: InvestigateInput) -> IncidentSnapshot:
        return self._act(a)

    @investigate.validator
    def _v_investigate(self, a: InvestigateInput) -> None:
        self._validate(a)

    @workflow.update
    async def mitigate(self, a: MitigateInput) -> IncidentSnapshot:
        return self._act(a)

    @mitigate.validator
    def _v_mitigate(self, a: MitigateInput) -> None:
        self._validate(a)

    @workflow.update
    async def resolve(self, a: ResolveInput) -> IncidentSnapshot:
        return self._act(a)

    @resolve.validator
    def _v_resolve(self, a: ResolveInput) -> None:
        self._validate(a)

    @workflow.update
    async def close(self, a: CloseInput) -> IncidentSnapshot:
        """Close; where the severity requires a review, hand over to it now instead: the
        incident stays resolved until the review is completed or waived, which closes it."""
        if self._recognised():
            return self.s.summary()
        if self.rules.severity_policy().review_required:
            self._guard(a)
            if self._patched(CLOSE_STARTS_REVIEW):
                self._remember_action()
                self._handing_over = True
                await self._run(self.rules.start_review(a.actor, event_details(a), workflow.now()))
                return self.s.summary()
        return self._act(a)

    @close.validator
    def _v_close(self, a: CloseInput) -> None:
        self._validate(a)

    @workflow.update
    async def cancel(self, a: CancelInput) -> IncidentSnapshot:
        """False alarm: closes without review."""
        return self._act(a)

    @cancel.validator
    def _v_cancel(self, a: CancelInput) -> None:
        self._validate(a)

    @workflow.update
    async def merge_into(self, a: MergeInput) -> IncidentSnapshot:
        return self._act(a)

    @merge_into.validator
    def _v_merge_into(self, a: MergeInput) -> None:
        self._validate(a)

    @workflow.update
    async def reopen(self, a: ReopenInput) -> IncidentSnapshot:
        return self._act(a)

    @reopen.validator
    def _v_reopen(self, a: ReopenInput) -> None:
        self._validate(a)

    @workflow.update
    async def assign(self, a: AssignInput) -> IncidentSnapshot:
        return self._act(a)

    @assign.validator
    def _v_assign(self, a: AssignInput) -> None:
        self._validate(a)

    @workflow.update
    async def change_severity(self, a: ChangeSeverityInput) -> IncidentSnapshot:
        return self._act(a)

    @change_severity.validator
    def _v_change_severity(self, a: ChangeSeverityInput) -> None:
        self._validate(a)

    @workflow.update
    async def add_note(self, a: NoteInput) -> IncidentSnapshot:
        return self._act(a)

    @add_note.validator
    def _v_add_note(self, a: NoteInput) -> None:
        self._validate(a)

    @workflow.update
    async def post_status_update(self, a: StatusUpdateInput) -> IncidentSnapshot:
        return self._act(a)

    @post_status_update.validator
    def _v_post_status_update(self, a: StatusUpdateInput) -> None:
        self._validate(a)

    @workflow.update
    async def escalate(self, a: EscalateInput) -> IncidentSnapshot:
        """Manual escalation: page a named target now, or the next level of the policy."""
        return self._act(a)

    @escalate.validator
    def _v_escalate(self, a: EscalateInput) -> None:
        self._validate(a)

    @workflow.update
    async def pause(self, a: PauseInput) -> IncidentSnapshot:
        """Stop the pausable clocks (waiting on a vendor); ``until`` resumes them."""
        self._patched(SLA_PAUSE)  # a new Update: histories that pause carry the marker
        return self._act(a)

    @pause.validator
    def _v_pause(self, a: PauseInput) -> None:
        self._validate(a)

    @workflow.update
    async def resume(self, a: ResumeInput) -> IncidentSnapshot:
        self._patched(SLA_PAUSE)
        return self._act(a)

    @resume.validator
    def _v_resume(self, a: ResumeInput) -> None:
        self._validate(a)

    @workflow.update
    async def link(self, a: LinkInput) -> IncidentSnapshot:
        """Relate this incident to another (the client sends the inverse to the other)."""
        self._patched(INCIDENT_LINKS)  # a new Update: histories that link carry the marker
        return self._act(a)

    @link.validator
    def _v_link(self, a: LinkInput) -> None:
        self._validate(a)

    @workflow.update
    async def unlink(self, a: UnlinkInput) -> IncidentSnapshot:
        self._patched(INCIDENT_LINKS)
        return self._act(a)

    @unlink.validator
    def _v_unlink(self, a: UnlinkInput) -> None:
        self._validate(a)

    def _validate(self, a: ActionInput) -> None:
        """The body of every responder Update's validator: reject before anything is
        written. An Update whose id this incident already applied (resent after a
        continue-as-new, where the server no longer knows it) is let through, and its
        handler answers without acting again."""
        if self._recognised():
            return
        try:
            self.rules.check(a, workflow.now())
        except Refused as refused:
            raise ApplicationError(refused.message, type=refused.failure) from None

    def _guard(self, a: ActionInput) -> None:
        """Re-check in the handler: two Updates accepted in one task both passed validation."""
        try:
            self.rules.guard(a)
        except Refused as refused:
            raise ApplicationError(refused.message, type=refused.failure) from None

    def _act(self, a: ActionInput) -> IncidentSnapshot:
        if self._recognised():
            return self.s.summary()
        self._guard(a)
        self._remember_action()
        self._apply(self.rules.act(a, workflow.now()))
        return self.s.summary()

    def _recognised(self) -> bool:
        """Whether the current Update's id was already applied by this incident."""
        info = workflow.current_update_info()
        return info is not None and info.id in self._action_ids

    def _remember_action(self) -> None:
        info = workflow.current_update_info()
        if info is not None:
            self._action_ids[info.id] = None
            while len(self._action_ids) > RECENT_ACTION_IDS:
                del self._action_ids[next(iter(self._action_ids))]

    # ------------------------------------------------------------------ running the rules
    def _apply(self, step: Step, *, written: bool = False) -> None:
        """Write a step's events (to the ticket, the search attributes, the main loop) and
        start its notifications. A step that starts a review goes through :meth:`_run`.
        ``written``: its events and the row are in PostgreSQL already (``open_incident``)."""
        for event in step.events:
            if not written:
                self._unsynced[event.seq] = event
                self._ticket_dirty = True
            if event.kind == EventKind.ESCALATED:
                manual = bool(event.details.get("manual"))
                telemetry.escalation_fired(workflow.metric_meter(), manual=manual)
        if step.events and not step.quiet:
            self._wake += 1
            self._upsert_search_attributes()
        if self.policy.slack is not None:
            self._slack_changed(step)
        for effect in step.effects:
            if isinstance(effect, Page | Notify):
                self._notify(effect.event, effect.targets, page=isinstance(effect, Page))
            elif isinstance(effect, Publish):
                self._notifications.start(self._publish(effect.event))

    async def _run(self, step: Step) -> None:
        """:meth:`_apply`, then start the review a step hands over to."""
        self._apply(step)
        for effect in step.effects:
            if isinstance(effect, StartReview):
                await workflow.start_child_workflow(
                    PostIncidentReviewWorkflow.run,
                    ReviewStart(
                        incident=self.s.summary(),
                        review_after=effect.review_after,
                        review=self.policy.review,
                    ),
                    id=effect.workflow_id,
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                )

    # ------------------------------------------------------------------ bookkeeping
    def _new_snapshot(self, alert: Alert) -> IncidentSnapshot:
        return IncidentSnapshot.for_alert(alert, self.policy.escalation, workflow.now())

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

    def _notify(
        self, event: TimelineEvent, targets: list[EscalationTarget], *, page: bool = False
    ) -> None:
        """Send in the background; failures come back as ``notification_failed`` events."""
        unique = list({str(t): t for t in targets}.values())
        if not unique:
            return
        self._notifications.start(self._deliver(event, unique, page))

    async def _deliver(
        self, event: TimelineEvent, targets: list[EscalationTarget], page: bool
    ) -> None:
        view = self._slack_now()
        failures, result = await notify_posting(
            self.s.summary(), event, targets, page=page, patched=self._patched
        )
        for details in failures:
            self._apply(self.rules.notification_failed(details, workflow.now()))
        if page and self.policy.slack is not None:
            self._slack_paged.extend(u for u in result.recipients if u not in self._slack_paged)
        posted = result.slack_messages
        if posted:
            known = {(m.channel, m.ts) for m in self.s.slack_messages}
            self.s.slack_messages.extend(m for m in posted if (m.channel, m.ts) not in known)
            if self._slack_now() != view:
                self._slack_stale = True  # changed while the page was on its way

    # ------------------------------------------------------------------ Slack
    def _slack_now(self) -> tuple[object, ...]:
        """What the bot's pages show: a change of any of it rewrites them."""
        s = self.s
        return (s.status, s.severity, s.escalation.level, s.responders.get(Role.COMMANDER))

    def _slack_wants_channel(self) -> bool:
        slack = self.policy.slack
        return (
            slack is not None
            and self.s.slack_channel is None
            and not self._slack_channel_failed
            and self.s.severity in slack.incident_channels
            and self.s.status in OPEN_STATUSES
        )

    def _slack_invites(self) -> list[str]:
        """The commander and the paged responders not yet invited to the channel."""
        commander = self.s.responders.get(Role.COMMANDER)
        people = [commander] if commander else []
        people += [u for u in self._slack_paged if u not in people]
        return [u for u in people if u not in self._slack_invited]

    def _slack_changed(self, step: Step) -> None:
        view = self._slack_now()
        if view != self._slack_view:
            self._slack_view = view
            self._slack_stale = self._slack_stale or bool(self.s.slack_messages)
        channel = self.s.slack_channel
        if step.quiet or not (self._slack_wants_channel() or (channel and not channel.archived)):
            return
        self._slack_events.extend(e for e in step.events if e.kind != EventKind.NOTIFICATION_FAILED)

    def _slack_archive_due(self) -> bool:
        slack, channel = self.policy.slack, self.s.slack_channel
        ending = self.s.status == Status.CLOSED or self._handing_over
        return bool(
            slack and slack.archive_after_close and channel and not channel.archived and ending
        )

    def _slack_due(self) -> bool:
        channel = self.s.slack_channel
        return (
            (self._slack_stale and bool(self.s.slack_messages))
            or self._slack_wants_channel()
            or (
                channel is not None
                and not channel.archived
                and bool(self._slack_events or self._slack_invites())
            )
            or self._slack_archive_due()
        )

    async def _sync_slack(self) -> None:
        """Bring Slack up to date whenever it is behind, one ``sync_slack`` at a time (so an
        older state never lands after a newer one); ends with the run, after the archive."""
        while True:
            await workflow.wait_condition(
                lambda: self._slack_due() or self._slack_draining or self._finished
            )
            if not self._slack_due() or not self._patched(SLACK_SYNC):
                return
            opening = self._slack_wants_channel()
            channel = self.s.slack_channel
            live = opening or (channel is not None and not channel.archived)
            invite = self._slack_invites() if live else []
            work = SyncSlackInput(
                incident=self.s.summary(),
                update_messages=self._slack_stale and bool(self.s.slack_messages),
                open_channel=opening,
                events=list(self._slack_events),
                invite=invite,
                archive=self._slack_archive_due(),
            )
            self._slack_stale = False
            self._slack_events.clear()
            view = self._slack_now()
            try:
                result = await workflow.execute_activity(
                    SYNC_SLACK,
                    work,
                    result_type=SyncSlackResult,
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=SEND_RETRY,
                )
            except ActivityError as err:
                self._slack_channel_failed = self._slack_channel_failed or opening
                if self.s.slack_channel is not None and work.archive:
                    self.s.slack_channel.archived = True  # do not try for ever
                cause = str(err.cause) if err.cause is not None else str(err)
                details = {"targets": ["slack"], "reason": cause}
                self._apply(self.rules.notification_failed(details, workflow.now()))
                continue
            if result.channel != self.s.slack_channel and self._patched(SLACK_IN_TICKET):
                self._ticket_dirty = True
            self.s.slack_channel = result.channel
            self._slack_invited.update(invite)
            if result.summary is not None and result.summary not in self.s.slack_messages:
                self.s.slack_messages.append(result.summary)
                if self._slack_now() != view:
                    self._slack_stale = True  # changed while the summary was on its way
            if opening and result.channel is None:
                self._slack_channel_failed = True  # no bot token: the activity skipped it

    async def _publish(self, event: TimelineEvent) -> None:
        """Mail a public update to the subscribers; a failure is written to the timeline."""
        try:
            result = await workflow.execute_activity(
                MAIL_SUBSCRIBERS,
                PublishInput(incident=self.s.summary(), event=event),
                result_type=PublishResult,
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=SEND_RETRY,
            )
        except ActivityError as err:
            reason = str(err.cause) if err.cause is not None else str(err)
            failed = {"event_seq": event.seq, "targets": ["subscribers"], "reason": reason}
            self._apply(self.rules.notification_failed(failed, workflow.now()))
            return
        if result.failed:
            failed = {
                "event_seq": event.seq,
                "targets": ["subscribers"],
                "reason": f"{result.failed} subscriber(s) not reached",
            }
            self._apply(self.rules.notification_failed(failed, workflow.now()))

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
