"""PostIncidentReviewWorkflow: the learning half of an incident, started by the incident as an
abandoned child (ID ``review:<number>``) so the incident's run can complete and free its
workflow ID for the next alert.

Reading order: ``run`` schedules the meeting (business days after resolution, see
``schemas.review_schedule``), records the review and its postmortem draft, sends the
calendar invite, then sleeps on durable timers until a reminder or the overdue instant is
due, or an Update (``reschedule``, ``complete``, ``waive``) changes the plan. Every instant
is absolute and recomputed after each wake-up, so a reschedule re-times everything.

After the review is done, the workflow stays as long as one of its action items is open.
It tracks them in its state: ``add_action_item`` adds one, ``update_action_item`` marks one
done, cancelled or reopened, reassigns it or moves its due instant (the row is written by an
activity the Update runs, so PostgreSQL and the workflow agree), and each open item's
reminder is a durable timer at its due instant, re-planned on every change. A done or
cancelled item is thus never reminded, with nothing polling the table. (Reviews completed
before items were tracked, ``PATCH_TRACKED_ACTION_ITEMS``, keep their one timer per due
date that re-reads the table.) The reminders live here rather than in a workflow per
item because the review owns the incident's timeline from the hand-over on: every event it
adds continues the incident's sequence numbers (the idempotency key of tickets and
notifications), and one owner of that counter keeps the numbers unique.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from schemas.activity_io import RECORD_INCIDENT, RecordIncidentInput
    from schemas.actors import SYSTEM_NAME
    from schemas.enums import EventKind, Role, Status, TargetKind
    from schemas.failures import FailureType
    from schemas.incident import TimelineEvent
    from schemas.policy import EscalationTarget, ReviewPolicy
    from schemas.review import (
        COMPLETE_HAND_OVER,
        DONE,
        OPEN_ACTION_ITEMS_DUE,
        PATCH_SCHEDULED_ONCE,
        PATCH_TRACKED_ACTION_ITEMS,
        PATCH_WAIVE_CANCELS_INVITE,
        RECORD_ACTION_ITEMS,
        RECORD_REVIEW,
        SEND_REVIEW_INVITE,
        STORE_ACTION_ITEMS,
        UPDATE_ACTION_ITEM,
        ActionItem,
        ActionItemChange,
        ActionItemInput,
        ActionItemStatus,
        AddActionItemInput,
        AddAttendeesInput,
        CompleteReviewInput,
        HandOverInput,
        InviteResult,
        OpenActionItemsInput,
        RecordActionItemsInput,
        RecordReviewInput,
        RescheduleInput,
        ReviewCompletion,
        ReviewInviteInput,
        ReviewStart,
        ReviewState,
        ReviewStatus,
        UpdateActionItemInput,
        WaiveInput,
        action_item_problem,
    )
    from schemas.review_schedule import (
        action_item_due,
        action_item_reminder_at,
        plan_review,
        reminder_due_dates,
        review_start,
        review_zone,
    )
    from workflows.common import SEND_RETRY, STORE_RETRY, Background, notify, wait_until_due

__all__ = [
    "CompleteReviewInput",
    "PostIncidentReviewWorkflow",
    "RescheduleInput",
    "ReviewStart",
    "ReviewState",
    "WaiveInput",
]

#: the actor of what the review does by itself (reminders, overdue, action items due)
SYSTEM = SYSTEM_NAME
#: how far ahead a meeting may be moved
RESCHEDULE_HORIZON = timedelta(days=366)


def _user(name: str) -> EscalationTarget:
    return EscalationTarget(kind=TargetKind.USER, name=name)


def _users(*names: str | None) -> list[EscalationTarget]:
    return [_user(n) for n in dict.fromkeys(n for n in names if n)]


@workflow.defn
class PostIncidentReviewWorkflow:
    @workflow.init
    def __init__(self, start: ReviewStart) -> None:
        self.review = start.review or ReviewPolicy()
        incident = start.incident
        self.s = ReviewState(
            number=incident.number,
            workflow_id=workflow.info().workflow_id,
            status=ReviewStatus.PENDING,
            incident=incident,
            facilitator=incident.responders.get(Role.COMMANDER) or self.review.facilitator_fallback,
            attendees=list(incident.participants),
            owner=self.review.owner,
            zone=review_zone(self.review)[0],
        )
        #: the incident wrote its timeline up to here; the draft waits for all of it
        self._incident_seq = incident.last_seq
        self._wake = 0
        #: one review operation at a time: schedule, reminder, overdue, complete, waive
        self._ops = asyncio.Lock()
        #: ticket writes in order, so the incident row's ``last_seq`` only moves forward
        self._writes = asyncio.Lock()
        #: one action-item change (or reminder round) at a time
        self._items = asyncio.Lock()
        self._notifications = Background()

    # ------------------------------------------------------------------ main loop
    @workflow.run
    async def run(self, start: ReviewStart) -> ReviewState:
        async with self._ops:
            # an Update handled before this point may have scheduled or finished it already
            if self.s.start is None and self.s.status not in DONE:
                now = workflow.now()
                resolved = self.s.incident.resolved_at or now
                meeting = review_start(resolved, start.review_after, self.review, not_before=now)
                await self._schedule(meeting, actor=SYSTEM, reason=None)

        while self.s.status not in DONE:
            await wait_until_due(self._next_due(), self._woken())
            await self._fire_due()

        await self._remind_action_items()  # only reviews completed before items were tracked
        await self._track_action_items()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await workflow.wait_condition(lambda: not self._notifications)
        return self.s

    def _woken(self) -> Callable[[], bool]:
        """A condition that turns true once anything changes the plan from now on."""
        seen = self._wake
        return lambda: self._wake != seen

    def _next_due(self) -> datetime | None:
        if self.s.status in DONE:
            return None
        candidates = list(self.s.reminders_pending[:1])
        if self.s.status == ReviewStatus.SCHEDULED and self.s.overdue_at is not None:
            candidates.append(self.s.overdue_at)
        return min(candidates) if candidates else None

    async def _fire_due(self) -> None:
        async with self._ops:
            if self.s.status in DONE:
                return
            now = workflow.now()
            while self.s.reminders_pending and self.s.reminders_pending[0] <= now:
                self.s.reminders_pending.pop(0)
                event = self._append(
                    EventKind.REVIEW_REMINDER,
                    SYSTEM,
                    {**self._meeting_details(), "sequence": self.s.sequence},
                )
                await self._record([event])
                self._notify(event, self._people())
            overdue = self.s.overdue_at
            if self.s.status == ReviewStatus.SCHEDULED and overdue is not None and overdue <= now:
                self.s.status = ReviewStatus.OVERDUE
                event = self._append(
                    EventKind.REVIEW_OVERDUE,
                    SYSTEM,
                    {
                        "due": overdue.isoformat(),
                        "start": self._iso(self.s.start),
                        "facilitator": self.s.facilitator,
                        "owner": self.s.owner,
                    },
                )
                await self._record([event])
                await self._record_review()
                # the facilitator is reminded; the policy's owner is the escalation
                self._notify(event, _users(self.s.facilitator, self.s.owner))

    # ------------------------------------------------------------------ scheduling
    async def _schedule(self, start: datetime, *, actor: str, reason: str | None) -> None:
        """(Re)plan the meeting, record it, (re)send the invite. Caller holds ``_ops``."""
        plan = plan_review(start, self.review, workflow.now())
        rescheduled = self.s.start is not None
        if rescheduled:
            self.s.sequence += 1
        self.s.start, self.s.end, self.s.zone = plan.start, plan.end, plan.zone
        self.s.reminders_pending = plan.reminders
        self.s.overdue_at = plan.overdue_at
        self.s.status = ReviewStatus.SCHEDULED
        details: dict[str, Any] = {
            **self._meeting_details(),
            "end": plan.end.isoformat(),
            "zone": plan.zone,
            "sequence": self.s.sequence,
            "workflow_id": self.s.workflow_id,
            "rescheduled": rescheduled,
        }
        if reason:
            details["reason"] = reason
        event = None
        if not rescheduled and workflow.patched(PATCH_SCHEDULED_ONCE):
            event = await self._complete_hand_over(actor, details)
        if event is None:
            event = self._append(EventKind.REVIEW_SCHEDULED, actor, details)
            await self._record([event])
        await self._record_review()
        await self._send_invite(event)
        self._wake += 1

    async def _complete_hand_over(
        self, actor: str, details: dict[str, Any]
    ) -> TimelineEvent | None:
        """The first meeting completes the incident's hand-over event (its last,
        ``review_scheduled`` too) rather than adding a second one; that event's ``seq`` keys
        the invites. ``None`` when the incident's last event is something else."""
        seq = self._incident_seq
        if seq < 1:
            return None
        merged = await workflow.execute_activity(
            COMPLETE_HAND_OVER,
            HandOverInput(number=self.s.number, seq=seq, details=details),
            result_type=bool,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=STORE_RETRY,
        )
        if not merged:
            return None
        return TimelineEvent(
            seq=seq,
            at=workflow.now(),
            actor=actor,
            kind=EventKind.REVIEW_SCHEDULED,
            details=details,
        )

    async def _send_invite(
        self,
        event: TimelineEvent,
        *,
        method: str = "REQUEST",
        recipients: list[str] | None = None,
    ) -> None:
        """Mail the .ics (to ``recipients``, default everyone); people without an email
        address hear the same news through ``notify`` (not for a cancellation: the
        ``closed`` notification already says it)."""
        assert self.s.start is not None and self.s.end is not None
        inc = self.s.incident
        invite = ReviewInviteInput(
            number=inc.number,
            seq=event.seq,
            title=inc.title,
            service=inc.service,
            severity=inc.severity.value,
            start=self.s.start,
            end=self.s.end,
            zone=self.s.zone,
            facilitator=self.s.facilitator,
            attendees=self.s.attendees,
            sequence=self.s.sequence,
            stamp=event.at,
            method="CANCEL" if method == "CANCEL" else "REQUEST",
            recipients=recipients,
            kind=event.kind.value,
        )
        try:
            result = await workflow.execute_activity(
                SEND_REVIEW_INVITE,
                invite,
                result_type=InviteResult,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=SEND_RETRY,
            )
        except ActivityError as err:
            await self._failed(event, self._people(), str(err.cause or err))
            return
        for reason in result.failed:
            await self._failed(event, [], reason)
        if result.without_email and method != "CANCEL":
            # no calendar for them: the same news through their other channels
            self._notify(event, _users(*result.without_email))

    # ------------------------------------------------------------------ updates
    @workflow.update
    async def reschedule(self, a: RescheduleInput) -> ReviewState:
        async with self._ops:
            self._guard("reschedule")
            await self._schedule(a.at, actor=a.actor, reason=a.reason)
        return self.s

    @reschedule.validator
    def _v_reschedule(self, a: RescheduleInput) -> None:
        self._check("reschedule", a.actor)
        if a.at.tzinfo is None:
            raise ValueError(f"the new time {a.at.isoformat()} needs a UTC offset")
        if a.at <= workflow.now():
            raise ValueError(
                f"cannot reschedule the review of {self.s.number} to {a.at.isoformat()}: "
                "that is not in the future"
            )
        if a.at > workflow.now() + RESCHEDULE_HORIZON:
            raise ValueError(
                f"cannot reschedule the review of {self.s.number} to {a.at.isoformat()}: "
                f"that is more than {RESCHEDULE_HORIZON.days} days ahead"
            )

    @workflow.update
    async def complete(self, done: CompleteReviewInput) -> ReviewState:
        """Store the document and action items, close the incident, tell everyone."""
        async with self._ops:
            self._guard("complete")
            now = workflow.now()
            self.s.completion = ReviewCompletion(
                completed_by=done.actor,
                completed_at=now,
                summary=done.summary,
                contributing_factors=done.contributing_factors,
                what_went_well=done.what_went_well,
                what_to_improve=done.what_to_improve,
                action_items=done.action_items,
            )
            completed = await self._close(
                done.actor,
                EventKind.REVIEW_COMPLETED,
                {
                    "summary": done.summary,
                    "contributing_factors": done.contributing_factors,
                    "action_items": len(done.action_items),
                },
                reason="review completed",
                status=ReviewStatus.COMPLETED,
            )
            inc = self.s.incident
            if workflow.patched(PATCH_TRACKED_ACTION_ITEMS):
                if done.action_items:
                    async with self._items:
                        await self._store_items(done.action_items)
            else:
                if done.action_items:
                    await workflow.execute_activity(
                        RECORD_ACTION_ITEMS,
                        RecordActionItemsInput(
                            number=inc.number, service=inc.service, items=done.action_items
                        ),
                        start_to_close_timeout=timedelta(seconds=30),
                        retry_policy=STORE_RETRY,
                    )
                self.s.action_item_reminders = reminder_due_dates(
                    [item.due_date for item in done.action_items]
                )
            owners = [item.owner for item in done.action_items]
            self._notify(
                completed, _users(self.s.facilitator, *self.s.attendees, *owners, self.s.owner)
            )
            self._wake += 1
        return self.s

    @complete.validator
    def _v_complete(self, done: CompleteReviewInput) -> None:
        self._check("complete", done.actor)
        if not done.summary.strip():
            raise ValueError("summary must not be empty")
        seen: set[tuple[str, str]] = set()
        for item in done.action_items:
            if not item.owner.strip() or not item.title.strip():
                raise ValueError("every action item needs an owner and a title")
            key = (item.title.strip(), item.owner.strip())
            if key in seen:
                raise ValueError(f"action item {item.title!r} for {item.owner} is listed twice")
            seen.add(key)

    @workflow.update
    async def waive(self, w: WaiveInput) -> ReviewState:
        """Skip the review (admins only, see WaiveInput): the incident closes without one."""
        async with self._ops:
            self._guard("waive")
            self.s.waived_by = w.actor
            self.s.waived_reason = w.reason
            closed = await self._close(
                w.actor,
                None,
                {},
                reason=f"review waived: {w.reason}",
                status=ReviewStatus.WAIVED,
            )
            if workflow.patched(PATCH_WAIVE_CANCELS_INVITE) and self.s.start is not None:
                # the meeting leaves the calendars: same UID, higher SEQUENCE, METHOD:CANCEL
                self.s.sequence += 1
                await self._send_invite(closed, method="CANCEL")
            self._notify(closed, _users(self.s.facilitator, *self.s.attendees, self.s.owner))
            self._wake += 1
        return self.s

    @waive.validator
    def _v_waive(self, w: WaiveInput) -> None:
        self._check("waive", w.actor)
        if not w.admin:
            raise ApplicationError(
                f"{w.actor} may not waive the review of {self.s.number}: "
                "waiving needs the admin scope",
                type=FailureType.FORBIDDEN,
            )
        if not w.reason.strip():
            raise ValueError("a reason is required to waive a review")

    @workflow.update
    async def add_attendees(self, a: AddAttendeesInput) -> ReviewState:
        """Invite more people: they get the invite (same UID and SEQUENCE, every attendee
        listed); the ones invited before keep theirs."""
        async with self._ops:
            self._guard("add attendees to")
            known = {self.s.facilitator, *self.s.attendees}
            new = [p for p in dict.fromkeys(n.strip() for n in a.people) if p not in known]
            if not new:
                return self.s
            self.s.attendees.extend(new)
            event = self._append(
                EventKind.REVIEW_ATTENDEES_ADDED,
                a.actor,
                {"added": new, "attendees": list(self.s.attendees)},
            )
            await self._record([event])
            await self._record_review()
            if self.s.start is not None:
                await self._send_invite(event, recipients=new)
        return self.s

    @add_attendees.validator
    def _v_add_attendees(self, a: AddAttendeesInput) -> None:
        self._check("add attendees to", a.actor)
        if any(not p.strip() for p in a.people):
            raise ValueError("attendee names must not be empty")

    @workflow.update
    async def add_action_item(self, a: AddActionItemInput) -> ActionItem:
        """A new action item, tracked (and reminded) like the ones of ``complete``."""
        async with self._items:
            self._guard_items()
            (stored,) = await self._store_items([a.item])
        return stored

    @add_action_item.validator
    def _v_add_action_item(self, a: AddActionItemInput) -> None:
        if not a.actor.strip():
            raise ValueError("actor is required")
        self._guard_items()
        if not a.item.owner.strip() or not a.item.title.strip():
            raise ValueError("an action item needs an owner and a title")
        key = (a.item.title.strip(), a.item.owner.strip())
        for item in self.s.action_items:
            if (item.title, item.owner) == key:
                raise ApplicationError(
                    f"action item {item.id} ({item.title!r} for {item.owner}) already exists; "
                    "change it instead",
                    type=FailureType.ACTION_ITEM_EXISTS,
                )

    @workflow.update
    async def update_action_item(self, c: ActionItemChange) -> ActionItem:
        """Mark an item done, cancelled or open again, reassign it or move its due instant.

        The row is written by an activity; the tracked copy is replaced by the row it
        returns and the reminder timers are re-planned (a closed item has none)."""
        async with self._items:
            tracked = self._tracked(c.id)
            if tracked is not None:
                problem = action_item_problem(tracked, c)
                if problem:
                    raise ApplicationError(problem, type=FailureType.ACTION_ITEM_CLOSED)
            if c.due_date is not None or c.due_at is not None:
                due_date, due_at = action_item_due(c.due_date, c.due_at, self.review)
                c = c.model_copy(update={"due_date": due_date, "due_at": due_at})
            try:
                row = await workflow.execute_activity(
                    UPDATE_ACTION_ITEM,
                    UpdateActionItemInput(number=self.s.number, change=c),
                    result_type=ActionItem,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=STORE_RETRY,
                )
            except ActivityError as err:
                cause = err.cause
                if (
                    isinstance(cause, ApplicationError)
                    and cause.type == FailureType.ACTION_ITEM_NOT_FOUND
                ):
                    raise ApplicationError(
                        cause.message, type=FailureType.ACTION_ITEM_NOT_FOUND
                    ) from err
                raise
            self._track(row)
        return row

    @update_action_item.validator
    def _v_update_action_item(self, c: ActionItemChange) -> None:
        if not c.actor.strip():
            raise ValueError("actor is required")
        if c.status is None and not c.changes_plan():
            raise ValueError("nothing to change: give a status, an owner or a due date")
        tracked = self._tracked(c.id)
        if tracked is not None:
            problem = action_item_problem(tracked, c)
            if problem:
                raise ApplicationError(problem, type=FailureType.ACTION_ITEM_CLOSED)

    def _guard_items(self) -> None:
        if self.s.status == ReviewStatus.WAIVED:
            raise ApplicationError(
                f"cannot add an action item to the review of {self.s.number}: it is waived",
                type=FailureType.REVIEW_CLOSED,
            )

    def _check(self, action: str, actor: str) -> None:
        if not actor.strip():
            raise ValueError("actor is required")
        self._guard(action)

    def _guard(self, action: str) -> None:
        """Also re-checked in handlers: two Updates accepted together both passed validation."""
        if self.s.status in DONE:
            raise ApplicationError(
                f"cannot {action} the review of {self.s.number}: it is {self.s.status.value}",
                type=FailureType.REVIEW_CLOSED,
            )

    async def _close(
        self,
        actor: str,
        kind: EventKind | None,
        details: dict[str, Any],
        *,
        reason: str,
        status: ReviewStatus,
    ) -> TimelineEvent:
        """Finish the review and close the incident; returns the first event appended."""
        now = workflow.now()
        self.s.status = status
        self.s.reminders_pending = []
        inc = self.s.incident
        inc.status = Status.CLOSED
        inc.closed_at = now
        inc.close_reason = reason
        events = [self._append(kind, actor, details)] if kind is not None else []
        events.append(self._append(EventKind.CLOSED, actor, {"reason": reason}))
        await self._record(events)
        await self._record_review()
        return events[0]

    # ------------------------------------------------------------------ queries
    @workflow.query
    def state(self) -> ReviewState:
        return self.s

    # ------------------------------------------------------------------ action items
    async def _remind_action_items(self) -> None:
        """One durable timer per due date; each reminder asks the ticket store which items
        of that date are still open."""
        while self.s.action_item_reminders:
            due = self.s.action_item_reminders[0]
            delay = (action_item_reminder_at(due, self.review) - workflow.now()).total_seconds()
            if delay > 0:
                await workflow.sleep(delay)
            items = await workflow.execute_activity(
                OPEN_ACTION_ITEMS_DUE,
                OpenActionItemsInput(number=self.s.number, due_date=due),
                result_type=list[ActionItem],
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=STORE_RETRY,
            )
            self.s.action_item_reminders.pop(0)
            by_owner: dict[str, list[ActionItem]] = {}
            for item in items:
                by_owner.setdefault(item.owner, []).append(item)
            for owner, owned in by_owner.items():
                event = self._append(
                    EventKind.ACTION_ITEM_DUE,
                    SYSTEM,
                    {
                        "owner": owner,
                        "due": due.isoformat(),
                        "items": [item.title for item in owned],
                        "ids": [item.id for item in owned],
                    },
                )
                await self._record([event])
                self._notify(event, [_user(owner)])

    def _tracked(self, item_id: int) -> ActionItem | None:
        return next((i for i in self.s.action_items if i.id == item_id), None)

    def _track(self, row: ActionItem) -> None:
        """Replace (or add) the tracked copy of ``row`` and re-plan the reminders."""
        self.s.action_items = [i for i in self.s.action_items if i.id != row.id] + [row]
        self.s.action_items.sort(key=lambda i: i.id)
        self._wake += 1

    async def _store_items(self, items: list[ActionItemInput]) -> list[ActionItem]:
        """Upsert ``items`` (due instants resolved in the review zone) and track them.
        Caller holds ``_items``."""
        resolved = []
        for item in items:
            due_date, due_at = action_item_due(item.due_date, item.due_at, self.review)
            resolved.append(item.model_copy(update={"due_date": due_date, "due_at": due_at}))
        inc = self.s.incident
        rows = await workflow.execute_activity(
            STORE_ACTION_ITEMS,
            RecordActionItemsInput(number=inc.number, service=inc.service, items=resolved),
            result_type=list[ActionItem],
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=STORE_RETRY,
        )
        for row in rows:
            self._track(row)
        return rows

    def _item_reminder_due(self, item: ActionItem) -> datetime | None:
        """When ``item``'s reminder is due, or ``None`` (closed, undated, already sent)."""
        if item.status != ActionItemStatus.OPEN or item.due_at is None:
            return None
        if self.s.action_items_reminded.get(item.id) == item.due_at:
            return None
        return item.due_at

    async def _track_action_items(self) -> None:
        """While any tracked item is open: sleep until the next reminder or a change."""
        while any(i.status == ActionItemStatus.OPEN for i in self.s.action_items):
            woken = self._woken()
            dues = [d for d in map(self._item_reminder_due, self.s.action_items) if d]
            await wait_until_due(min(dues) if dues else None, woken)
            await self._send_item_reminders()

    async def _send_item_reminders(self) -> None:
        """One ``action_item_due`` event per owner and due instant reached."""
        async with self._items:
            now = workflow.now()
            by_owner: dict[tuple[str, datetime], list[ActionItem]] = {}
            for item in self.s.action_items:
                due = self._item_reminder_due(item)
                if due is not None and due <= now:
                    by_owner.setdefault((item.owner, due), []).append(item)
            for (owner, due), owned in sorted(by_owner.items()):
                for item in owned:
                    self.s.action_items_reminded[item.id] = due
                event = self._append(
                    EventKind.ACTION_ITEM_DUE,
                    SYSTEM,
                    {
                        "owner": owner,
                        "due": (owned[0].due_date or due.date()).isoformat(),
                        "due_at": due.isoformat(),
                        "items": [item.title for item in owned],
                        "ids": [item.id for item in owned],
                    },
                )
                await self._record([event])
                self._notify(event, [_user(owner)])

    # ------------------------------------------------------------------ bookkeeping
    def _append(self, kind: EventKind, actor: str, details: dict[str, Any]) -> TimelineEvent:
        """A new event of the incident's timeline, numbered after the incident's own."""
        inc = self.s.incident
        inc.last_seq += 1
        return TimelineEvent(
            seq=inc.last_seq, at=workflow.now(), actor=actor, kind=kind, details=details
        )

    def _people(self) -> list[EscalationTarget]:
        return _users(self.s.facilitator, *self.s.attendees)

    def _meeting_details(self) -> dict[str, Any]:
        return {
            "start": self._iso(self.s.start),
            "facilitator": self.s.facilitator,
            "attendees": list(self.s.attendees),
        }

    @staticmethod
    def _iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    async def _record(self, events: list[TimelineEvent]) -> None:
        """Upsert the incident row (status, ``last_seq``) and insert ``events``."""
        async with self._writes:
            await workflow.execute_activity(
                RECORD_INCIDENT,
                RecordIncidentInput(
                    snapshot=self.s.incident.model_copy(deep=True),
                    events=[e.model_copy(deep=True) for e in events],
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=STORE_RETRY,
            )

    async def _record_review(self) -> None:
        """Re-render the postmortem and upsert the ``reviews`` row."""
        await workflow.execute_activity(
            RECORD_REVIEW,
            RecordReviewInput(review=self.s.model_copy(deep=True), through_seq=self._incident_seq),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=STORE_RETRY,
        )

    async def _failed(
        self, event: TimelineEvent, targets: list[EscalationTarget], reason: str
    ) -> None:
        failure = self._append(
            EventKind.NOTIFICATION_FAILED,
            SYSTEM,
            {"event_seq": event.seq, "targets": [str(t) for t in targets], "reason": reason},
        )
        await self._record([failure])

    def _notify(self, event: TimelineEvent, targets: list[EscalationTarget]) -> None:
        """Send in the background; failures come back as ``notification_failed`` events."""
        if not targets:
            return
        self._notifications.start(self._deliver(event, targets))

    async def _deliver(self, event: TimelineEvent, targets: list[EscalationTarget]) -> None:
        for details in await notify(self.s.incident.model_copy(deep=True), event, targets):
            failed = self._append(EventKind.NOTIFICATION_FAILED, SYSTEM, details)
            await self._record([failed])
