"""Post-incident review tests: a policy with emails and a seconds-scale review section, a
stack whose worker mails through a local aiosmtpd, a scripted incident, .ics helpers.

Timing: the first meeting is computed for real (business days ahead, so it never comes
within a test). Tests that need the meeting's clocks ``reschedule`` it a few seconds ahead,
with reminders, meeting length and overdue grace in seconds (``overdue_after_business_days:
0`` = overdue once the meeting has ended). Nothing is faked: the same Update an operator
would use moves the meeting, and every wait is a wait for a condition.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from icalendar import Calendar
from temporalio.client import Client

from activities.db import create_pool
from schemas.actions import MitigateInput, NoteInput, ResolveInput
from schemas.enums import Action, Severity
from schemas.incident import Alert, IncidentPolicy
from schemas.policy import Policy, Service
from schemas.review import ReviewStatus, review_workflow_id
from schemas.settings import Settings
from starter.client import IncidentClient
from starter.reviews_client import ReviewClient
from tests.conftest import wait_for
from tests.support_incidents import HISTORIES, Stack, make_policy

USERS = ("alice", "bob", "carol", "dave")
SMTP_FROM = "incidentflow@example.com"


def email_of(user: str) -> str:
    return f"{user}@example.com"


def review_policy(
    *,
    review_required: Sequence[str] = ("SEV1", "SEV2"),
    review_after: int = 2,
    zone: str = "Europe/Berlin",
    reminders: Sequence[float] = (24 * 3600, 3600),
    duration: float = 3600,
    overdue_after_business_days: int = 2,
    reopen_window: float = 0.5,
    holidays: Sequence[str] = (),
) -> Policy:
    """make_policy's users with email addresses, reviews for ``review_required`` only,
    owner dave, facilitator fallback carol."""
    data: dict[str, Any] = make_policy(
        level_delay=60, ack_within=60, reopen_window=reopen_window
    ).model_dump(mode="json")
    data["users"] = [{"name": u, "email": email_of(u)} for u in USERS]
    for severity, sp in data["severities"].items():
        sp["review_required"] = severity in review_required
        sp["review_after"] = review_after
    data["review"] = {
        "meeting_time": "14:00",
        "zone": zone,
        "duration": duration,
        "reminders": list(reminders),
        "overdue_after_business_days": overdue_after_business_days,
        "owner": "dave",
        "facilitator_fallback": "carol",
        "holidays": list(holidays),
    }
    return Policy.model_validate(data)


class ReviewingIncidentClient(IncidentClient):
    """Fills ``IncidentPolicy.review`` from the policy until ``IncidentClient.incident_policy``
    does so itself (then this is a no-op)."""

    def incident_policy(self, service: Service) -> IncidentPolicy:
        policy = super().incident_policy(service)
        if policy.review is None:
            policy = policy.model_copy(update={"review": self.policy.review})
        return policy


@dataclass
class ReviewStack:
    st: Stack
    reviews: ReviewClient

    @property
    def client(self) -> IncidentClient:
        return self.st.client

    async def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        return await self.st.rows(sql, *params)

    async def review_row(self, number: str) -> dict[str, Any] | None:
        rows = await self.rows("SELECT * FROM reviews WHERE number = %s", number)
        return rows[0] if rows else None

    async def wait_review_status(
        self, number: str, status: ReviewStatus, *, within: float = 20
    ) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            row = await self.review_row(number)
            return row if row and row["status"] == status.value else None

        result: dict[str, Any] = await wait_for(
            probe, timeout=within, message=f"review of {number} {status.value}"
        )
        return result

    async def notified(self, number: str, kind: str) -> list[dict[str, Any]]:
        return await self.rows(
            "SELECT * FROM notifications WHERE number = %s AND event_kind = %s ORDER BY seq, id",
            number,
            kind,
        )

    async def events(self, number: str, kind: str | None = None) -> list[dict[str, Any]]:
        if kind is None:
            return await self.rows(
                "SELECT * FROM incident_events WHERE number = %s ORDER BY seq", number
            )
        return await self.rows(
            "SELECT * FROM incident_events WHERE number = %s AND kind = %s ORDER BY seq",
            number,
            kind,
        )


@asynccontextmanager
async def review_stack(
    temporal: Client, database_url: str, task_queue: str, policy: Policy, smtp_port: int
) -> AsyncIterator[ReviewStack]:
    pool = await create_pool(database_url, max_size=5)
    settings = Settings(
        database_url=database_url,
        temporal_task_queue=task_queue,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_from=SMTP_FROM,
    )
    stack = Stack(
        client=ReviewingIncidentClient(temporal, policy, task_queue=task_queue),
        temporal=temporal,
        pool=pool,
        policy=policy,
        settings=settings,
        task_queue=task_queue,
        database_url=database_url,
    )
    try:
        async with stack.worker():
            yield ReviewStack(stack, ReviewClient(temporal, database_url=database_url))
    finally:
        await pool.close()


async def resolved_incident(
    rs: ReviewStack, key: str, *, severity: Severity = Severity.SEV1
) -> str:
    """Trigger, acknowledge (alice: commander), note (bob), mitigate (carol), resolve (alice)."""
    client = rs.client
    ref = await client.trigger(
        Alert(service="checkout", title="Checkout 500s", dedup_key=key, severity=severity)
    )
    await client.acknowledge(ref.number, "alice")
    await client.act(ref.number, Action.ADD_NOTE, NoteInput(actor="bob", text="gateway\ntimeouts"))
    await client.act(ref.number, Action.MITIGATE, MitigateInput(actor="carol", note="rolled back"))
    await client.act(ref.number, Action.RESOLVE, ResolveInput(actor="alice", resolution="fixed"))
    return ref.number


# -- calendar invites ---------------------------------------------------------------------


@dataclass
class Invite:
    message: EmailMessage
    calendar: Calendar

    @property
    def event(self) -> Any:
        return next(iter(self.calendar.walk("VEVENT")))

    @property
    def to(self) -> str:
        return str(self.message["To"])

    @property
    def sequence(self) -> int:
        return int(self.event["SEQUENCE"])

    @property
    def attendees(self) -> set[str]:
        value = self.event.get("ATTENDEE")
        values = value if isinstance(value, list) else [value]
        return {str(v) for v in values if v is not None}


def invites(messages: Sequence[EmailMessage]) -> list[Invite]:
    """The mails that carry a text/calendar part, with that part parsed by icalendar."""
    found = []
    for message in messages:
        for part in message.walk():
            if part.get_content_type() == "text/calendar":
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                found.append(Invite(message, Calendar.from_ical(payload)))
    return found


async def record_review_history(temporal: Client, number: str, name: str) -> None:
    """Like ``support_incidents.record_history``, for the review workflow of ``number``:
    re-recorded only when INCIDENTFLOW_RECORD_HISTORIES=1."""
    if os.environ.get("INCIDENTFLOW_RECORD_HISTORIES") != "1":
        return
    history = await temporal.get_workflow_handle(review_workflow_id(number)).fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    (HISTORIES / f"{name}.json").write_text(history.to_json())
