"""The review activities: the ``reviews`` row with its postmortem, the calendar invite, and
the ``action_items`` rows. All idempotent, so Temporal may retry any of them.

- ``record_review`` renders the postmortem from the timeline in ``incident_events`` and
  upserts the ``reviews`` row (one per incident number).
- ``complete_hand_over`` adds the first meeting to the incident's own ``review_scheduled``
  event (the hand-over), so each schedule is one timeline event.
- ``send_review_invite`` mails the .ics to the facilitator and attendees. Each delivery is
  keyed ``{number}:{seq}:invite:{user}:email`` in the ``notifications`` table and claimed
  before sending, exactly as ``notify`` does, so retries never send an invite twice while a
  reschedule (a new ``seq``) sends the updated one.
- ``store_action_items`` upserts by ``(number, title, owner)`` and returns the rows (with
  their ids) for the workflow to track; ``update_action_item`` changes one row (status,
  owner, due) on the workflow's behalf, so every write of a tracked item goes through it.
- ``record_action_items`` and ``open_action_items_due``: the same for reviews completed
  before the workflow tracked its items (their reminders re-read the table).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.knowledge import REFRESH_SEARCH
from activities.notifications.channels.email import parse_address, send_message
from activities.notifications.errors import DeliveryError
from activities.reviews.invite import build_invite_email, invite_subject
from activities.reviews.rendering import PostmortemRenderer, local_time
from schemas.action_item_sql import ACTION_ITEM_COLUMNS, CHANGE_ACTION_ITEM, change_parameters
from schemas.enums import EventKind
from schemas.failures import FailureType
from schemas.incident import TimelineEvent
from schemas.incident_links import LINKS_SQL, LinkedIncident
from schemas.links import review_url
from schemas.policy import Policy
from schemas.policy_holder import PolicyHolder
from schemas.review import (
    COMPLETE_HAND_OVER,
    OPEN_ACTION_ITEMS_DUE,
    RECORD_ACTION_ITEMS,
    RECORD_REVIEW,
    SEND_REVIEW_INVITE,
    STORE_ACTION_ITEMS,
    UPDATE_ACTION_ITEM,
    ActionItem,
    HandOverInput,
    InviteResult,
    OpenActionItemsInput,
    RecordActionItemsInput,
    RecordReviewInput,
    ReviewInviteInput,
    ReviewStatus,
    UpdateActionItemInput,
)
from schemas.review_calendar import Person, build_invite, invitees
from schemas.settings import Settings

#: attempts of ``record_review`` that wait for the incident's last ticket write before the
#: draft is rendered from whatever timeline is stored (a gap should never happen; if it
#: does, a draft with a gap beats no draft)
TIMELINE_WAIT_ATTEMPTS = 20
INVITE_RETRY_TYPE = "ReviewInviteRetry"

_EVENTS = "SELECT seq, at, actor, kind, details FROM incident_events WHERE number = %s ORDER BY seq"

_EVENT_KIND = "SELECT kind FROM incident_events WHERE number = %s AND seq = %s"
_MERGE_DETAILS = """
UPDATE incident_events SET details = details || %s
 WHERE number = %s AND seq = %s AND kind = 'review_scheduled'
"""

_UPSERT_REVIEW = """
INSERT INTO reviews (
    number, workflow_id, status, facilitator, attendees, scheduled_at, document, summary,
    completed_at, updated_at
) VALUES (
    %(number)s, %(workflow_id)s, %(status)s, %(facilitator)s, %(attendees)s,
    %(scheduled_at)s, %(document)s, %(summary)s, %(completed_at)s, now()
)
ON CONFLICT (number) DO UPDATE SET
    workflow_id = EXCLUDED.workflow_id,
    status = EXCLUDED.status,
    facilitator = EXCLUDED.facilitator,
    attendees = EXCLUDED.attendees,
    scheduled_at = EXCLUDED.scheduled_at,
    document = EXCLUDED.document,
    summary = EXCLUDED.summary,
    completed_at = EXCLUDED.completed_at,
    updated_at = now()
"""

_UPSERT_ACTION_ITEM = """
INSERT INTO action_items (number, service, owner, title, due_date)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (number, title, owner) DO UPDATE SET
    service = EXCLUDED.service,
    due_date = EXCLUDED.due_date,
    updated_at = now()
"""


_STORE_ACTION_ITEM = f"""
INSERT INTO action_items (number, service, owner, title, due_date, due_at, updated_by)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (number, title, owner) DO UPDATE SET
    service = EXCLUDED.service,
    due_date = EXCLUDED.due_date,
    due_at = EXCLUDED.due_at,
    updated_at = now()
RETURNING {ACTION_ITEM_COLUMNS}
"""

_OPEN_DUE = f"""
SELECT {ACTION_ITEM_COLUMNS}
  FROM action_items
 WHERE number = %s AND due_date = %s AND status = 'open'
 ORDER BY id
"""

# the outbox rows, as in activities.notifications.activity
_INSERT = """
INSERT INTO notifications (key, number, seq, event_kind, target, recipient, channel, address)
VALUES (%s, %s, %s, %s, %s, %s, 'email', %s)
ON CONFLICT (key) DO NOTHING
"""
_CLAIM = (
    "UPDATE notifications SET attempts = attempts + 1 WHERE key = %s AND status = 'pending' "
    "RETURNING attempts"
)
_PRIOR = "SELECT status, last_error FROM notifications WHERE key = %s"
_SENT = (
    "UPDATE notifications SET status = 'sent', sent_at = now(), last_error = NULL WHERE key = %s"
)
_FAILED = "UPDATE notifications SET status = 'failed', last_error = %s WHERE key = %s"
_RETRY = "UPDATE notifications SET last_error = %s WHERE key = %s"


def invite_key(number: str, seq: int, user: str) -> str:
    return f"{number}:{seq}:invite:{user}:email"


class ReviewActivities:
    """Activities over one shared pool; register the bound methods on the worker."""

    def __init__(
        self,
        pool: AsyncConnectionPool[psycopg.AsyncConnection],
        policy: Policy | PolicyHolder,
        settings: Settings,
        renderer: PostmortemRenderer | None = None,
    ) -> None:
        self._pool = pool
        #: read at each use: a reload reaches the next invitation
        self.policies = PolicyHolder.of(policy)
        self.settings = settings
        self.renderer = renderer or PostmortemRenderer(settings.incidentflow_templates)

    @property
    def policy(self) -> Policy:
        return self.policies.current

    @property
    def base_url(self) -> str:
        return self.settings.incidentflow_base_url or self.policy.base_url

    def link(self, number: str) -> str:
        return review_url(self.base_url, number)

    # ------------------------------------------------------------------ reviews row
    @activity.defn(name=RECORD_REVIEW)
    async def record_review(self, data: RecordReviewInput) -> None:
        review = data.review
        timeline = await self._timeline(review.number, data.through_seq)
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(LINKS_SQL, (review.number,))
            links = [LinkedIncident.model_validate(r) for r in await cur.fetchall()]
        document = self.renderer.render(review, timeline, links)
        completion = review.completion
        summary: str | None = None
        completed_at: datetime | None = None
        if review.status == ReviewStatus.COMPLETED and completion is not None:
            summary, completed_at = completion.summary, completion.completed_at
        elif review.status == ReviewStatus.WAIVED:
            summary, completed_at = review.waived_reason, review.incident.closed_at
        async with self._pool.connection() as conn:
            await conn.execute(
                _UPSERT_REVIEW,
                {
                    "number": review.number,
                    "workflow_id": review.workflow_id,
                    "status": review.status.value,
                    "facilitator": review.facilitator,
                    "attendees": Jsonb(review.attendees),
                    "scheduled_at": review.start,
                    "document": document,
                    "summary": summary,
                    "completed_at": completed_at,
                },
            )
            await conn.execute(REFRESH_SEARCH, (review.number,))

    @activity.defn(name=COMPLETE_HAND_OVER)
    async def complete_hand_over(self, data: HandOverInput) -> bool:
        """Merge the meeting into the hand-over event once the incident has stored it;
        ``False`` when that event is not a ``review_scheduled`` one (then the workflow
        appends its own)."""
        async with self._pool.connection() as conn:
            row = await (await conn.execute(_EVENT_KIND, (data.number, data.seq))).fetchone()
            if row is None:
                if activity.info().attempt < TIMELINE_WAIT_ATTEMPTS:
                    raise ApplicationError(
                        f"the hand-over event #{data.seq} of {data.number} is not recorded yet",
                        type=FailureType.TIMELINE_INCOMPLETE,
                    )
                return False
            if row[0] != EventKind.REVIEW_SCHEDULED.value:
                return False
            await conn.execute(_MERGE_DETAILS, (Jsonb(data.details), data.number, data.seq))
        return True

    async def _timeline(self, number: str, through_seq: int) -> list[TimelineEvent]:
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(_EVENTS, (number,))).fetchall()
        present = {row[0] for row in rows}
        missing = [seq for seq in range(1, through_seq + 1) if seq not in present]
        if missing and activity.info().attempt < TIMELINE_WAIT_ATTEMPTS:
            raise ApplicationError(
                f"the timeline of {number} is not recorded up to #{through_seq} yet "
                f"({len(missing)} event(s) missing, first #{missing[0]})",
                type=FailureType.TIMELINE_INCOMPLETE,
            )
        known = {k.value for k in EventKind}
        return [
            TimelineEvent(seq=seq, at=at, actor=actor, kind=EventKind(kind), details=details)
            for seq, at, actor, kind, details in rows
            if kind in known
        ]

    # ------------------------------------------------------------------ invite
    @activity.defn(name=SEND_REVIEW_INVITE)
    async def send_review_invite(self, data: ReviewInviteInput) -> InviteResult:
        listed = invitees(self.policy, data, self.settings.smtp_from)
        wanted = set(data.recipients) if data.recipients is not None else None
        result = InviteResult(
            without_email=[n for n in listed.without_email if wanted is None or n in wanted]
        )
        people = listed.people
        if not people:
            return result
        link = self.link(data.number)
        ics = build_invite(data, organizer=listed.organizer, attendees=people, link=link)
        local_start = local_time(data.start, data.zone)
        subject = invite_subject(data, local_start)
        cancelled = "CANCELLED: the review was waived.\n" if data.method == "CANCEL" else ""
        text = (
            f"{cancelled}Post-incident review of {data.number}: {' '.join(data.title.split())}\n"
            f"When: {local_start} ({data.start.astimezone(UTC):%Y-%m-%d %H:%M} UTC)\n"
            f"Facilitator: {data.facilitator or 'to be decided'}\n"
            f"Attendees: {', '.join(p.name for p in people)}\n\n"
            f"Postmortem draft and timeline: {link}\n"
        )
        to = [p for p in people if wanted is None or p.name in wanted]
        outcomes = await asyncio.gather(
            *(self._invite(data, person, ics, subject, text) for person in to),
            return_exceptions=True,
        )
        retry: list[str] = []
        for person, outcome in zip(to, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                raise outcome  # e.g. the database went away: retry the whole activity
            status, reason = outcome
            key = invite_key(data.number, data.seq, person.name)
            if status == "delivered":
                result.delivered.append(key)
            elif status == "skipped":
                result.skipped.append(key)
                if reason:
                    result.failed.append(f"{key}: {reason}")
            elif status == "failed":
                result.failed.append(f"{key}: {reason}")
            else:
                retry.append(f"{key}: {reason}")
        if retry:
            raise ApplicationError(
                f"{len(retry)} invite(s) failed transiently: {'; '.join(retry)}",
                type=INVITE_RETRY_TYPE,
            )
        return result

    async def _invite(
        self, data: ReviewInviteInput, person: Person, ics: bytes, subject: str, text: str
    ) -> tuple[str, str | None]:
        key = invite_key(data.number, data.seq, person.name)
        async with self._pool.connection() as conn:
            await conn.execute(
                _INSERT,
                (
                    key,
                    data.number,
                    data.seq,
                    data.kind,
                    f"user:{person.name}",
                    person.name,
                    person.email,
                ),
            )
            claimed = await (await conn.execute(_CLAIM, (key,))).fetchone()
            prior = None if claimed else await (await conn.execute(_PRIOR, (key,))).fetchone()
        if prior is not None:
            status, last_error = prior
            return "skipped", last_error if status == "failed" else None
        try:
            mail = build_invite_email(
                self.settings,
                parse_address(person.email),
                data,
                ics=ics,
                subject=subject,
                text=text,
                key=key,
            )
            await send_message(self.settings, mail)
        except DeliveryError as exc:
            if exc.transient:
                await self._record(_RETRY, (exc.reason, key))
                return "retry", exc.reason
            await self._record(_FAILED, (exc.reason, key))
            return "failed", exc.reason
        await self._record(_SENT, (key,))
        return "delivered", None

    async def _record(self, sql: str, params: tuple[Any, ...]) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(sql, params)

    # ------------------------------------------------------------------ action items
    @activity.defn(name=RECORD_ACTION_ITEMS)
    async def record_action_items(self, data: RecordActionItemsInput) -> None:
        rows = [
            (data.number, data.service, item.owner.strip(), item.title.strip(), item.due_date)
            for item in data.items
        ]
        async with self._pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(_UPSERT_ACTION_ITEM, rows)

    @activity.defn(name=STORE_ACTION_ITEMS)
    async def store_action_items(self, data: RecordActionItemsInput) -> list[ActionItem]:
        """Upsert the items (due date and instant as the workflow resolved them)."""
        stored: list[ActionItem] = []
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            for item in data.items:
                await cur.execute(
                    _STORE_ACTION_ITEM,
                    (
                        data.number,
                        data.service,
                        item.owner.strip(),
                        item.title.strip(),
                        item.due_date,
                        item.due_at,
                        None,
                    ),
                )
                row = await cur.fetchone()
                assert row is not None
                stored.append(ActionItem.model_validate(row))
        return stored

    @activity.defn(name=UPDATE_ACTION_ITEM)
    async def update_action_item(self, data: UpdateActionItemInput) -> ActionItem:
        change = data.change
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                CHANGE_ACTION_ITEM,
                change_parameters(change, data.number),
            )
            row = await cur.fetchone()
        if row is None:
            raise ApplicationError(
                f"no action item {change.id} in the review of {data.number}",
                type=FailureType.ACTION_ITEM_NOT_FOUND,
                non_retryable=True,
            )
        return ActionItem.model_validate(row)

    @activity.defn(name=OPEN_ACTION_ITEMS_DUE)
    async def open_action_items_due(self, data: OpenActionItemsInput) -> list[ActionItem]:
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_OPEN_DUE, (data.number, data.due_date))
            rows = await cur.fetchall()
        return [ActionItem.model_validate(row) for row in rows]
