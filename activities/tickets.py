"""The ticket store's activities: incident numbers, the incident row, the timeline.

Every write is idempotent so Temporal may retry any of them: the incident row is upserted
by number and never regressed by a stale write (``last_seq`` only moves forward), events
are keyed by ``(number, seq)``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.knowledge import REFRESH_SEARCH
from schemas.activity_io import (
    ALLOCATE_INCIDENT_NUMBER,
    OPEN_INCIDENT,
    RECORD_INCIDENT,
    AllocateNumberInput,
    RecordIncidentInput,
)
from schemas.enums import INVERSE_LINK, EventKind, LinkKind, Role
from schemas.failures import FailureType
from schemas.incident import IncidentSnapshot, TimelineEvent
from schemas.telemetry import activity_meter, ticket_write

NUMBER_PREFIX = "INC-"
_NUMBER = re.compile(r"^INC-(\d+)$")

# An existing row for this run wins (a retry after the row was written); otherwise a fresh
# number. COALESCE evaluates nextval only when the look-up found nothing.
_ALLOCATE = """
SELECT COALESCE(
    (SELECT number FROM incidents
      WHERE %(run_id)s <> '' AND workflow_id = %(workflow_id)s AND run_id = %(run_id)s
      ORDER BY number_seq LIMIT 1),
    'INC-' || nextval('incident_number_seq')
)
"""

_UPSERT_INCIDENT = """
INSERT INTO incidents (
    number, number_seq, workflow_id, run_id, title, description, service, status, severity,
    priority, impact, urgency, category, labels, dedup_key, source, alert_count, commander,
    escalation_level, breaches, snapshot, last_seq, created_at, acknowledged_at,
    mitigated_at, resolved_at, closed_at, updated_at,
    paused_seconds, paused_since, paused_reason, drill
) VALUES (
    %(number)s, %(number_seq)s, %(workflow_id)s, %(run_id)s, %(title)s, %(description)s,
    %(service)s, %(status)s, %(severity)s, %(priority)s, %(impact)s, %(urgency)s,
    %(category)s, %(labels)s, %(dedup_key)s, %(source)s, %(alert_count)s, %(commander)s,
    %(escalation_level)s, %(breaches)s, %(snapshot)s, %(last_seq)s, %(created_at)s,
    %(acknowledged_at)s, %(mitigated_at)s, %(resolved_at)s, %(closed_at)s, now(),
    %(paused_seconds)s, %(paused_since)s, %(paused_reason)s, %(drill)s
)
ON CONFLICT (number) DO UPDATE SET
    workflow_id = EXCLUDED.workflow_id,
    run_id = EXCLUDED.run_id,
    title = EXCLUDED.title,
    description = EXCLUDED.description,
    service = EXCLUDED.service,
    status = EXCLUDED.status,
    severity = EXCLUDED.severity,
    priority = EXCLUDED.priority,
    impact = EXCLUDED.impact,
    urgency = EXCLUDED.urgency,
    category = EXCLUDED.category,
    labels = EXCLUDED.labels,
    dedup_key = EXCLUDED.dedup_key,
    source = EXCLUDED.source,
    alert_count = EXCLUDED.alert_count,
    commander = EXCLUDED.commander,
    escalation_level = EXCLUDED.escalation_level,
    breaches = EXCLUDED.breaches,
    snapshot = EXCLUDED.snapshot,
    last_seq = EXCLUDED.last_seq,
    created_at = EXCLUDED.created_at,
    acknowledged_at = EXCLUDED.acknowledged_at,
    mitigated_at = EXCLUDED.mitigated_at,
    resolved_at = EXCLUDED.resolved_at,
    closed_at = EXCLUDED.closed_at,
    updated_at = now(),
    paused_seconds = EXCLUDED.paused_seconds,
    paused_since = EXCLUDED.paused_since,
    paused_reason = EXCLUDED.paused_reason,
    drill = EXCLUDED.drill
WHERE incidents.last_seq <= EXCLUDED.last_seq
"""

# One statement for the whole batch (arrays unnested server side). A repeated seq only
# refreshes its details: the workflow coalesces repeated alerts into one growing event.
_UPSERT_EVENTS = """
INSERT INTO incident_events (number, seq, at, actor, kind, details)
SELECT %(number)s, e.seq, e.at, e.actor, e.kind, e.details::jsonb
  FROM unnest(%(seqs)s::int[], %(ats)s::timestamptz[], %(actors)s::text[],
              %(kinds)s::text[], %(details)s::text[]) AS e(seq, at, actor, kind, details)
ON CONFLICT (number, seq) DO UPDATE SET details = EXCLUDED.details
WHERE incident_events.details IS DISTINCT FROM EXCLUDED.details
"""


# Both sides of a link, from one incident's linked / unlinked event (the other incident's
# own event of it writes the same rows again: nothing changes).
_LINK = """
INSERT INTO incident_links (number, other, kind, linked_at)
VALUES (%(number)s, %(other)s, %(kind)s, %(at)s), (%(other)s, %(number)s, %(inverse)s, %(at)s)
ON CONFLICT DO NOTHING
"""
_UNLINK = """
DELETE FROM incident_links
 WHERE (number, other, kind) IN ((%(number)s, %(other)s, %(kind)s),
                                 (%(other)s, %(number)s, %(inverse)s))
"""


def _link_writes(number: str, events: Sequence[TimelineEvent]) -> list[tuple[str, dict[str, Any]]]:
    """The ``incident_links`` statements of a batch's link events, in timeline order."""
    writes = []
    for event in sorted(events, key=lambda e: e.seq):
        if event.kind not in (EventKind.LINKED, EventKind.UNLINKED):
            continue
        kind = LinkKind(event.details["kind"])
        params = {
            "number": number,
            "other": event.details["number"],
            "kind": kind.value,
            "inverse": INVERSE_LINK[kind].value,
            "at": event.at,
        }
        writes.append((_LINK if event.kind == EventKind.LINKED else _UNLINK, params))
    return writes


class TicketActivities:
    """Activities over one shared pool; register the bound methods on the worker."""

    def __init__(self, pool: AsyncConnectionPool[psycopg.AsyncConnection]) -> None:
        self._pool = pool

    @activity.defn(name=ALLOCATE_INCIDENT_NUMBER)
    async def allocate_incident_number(self, data: AllocateNumberInput) -> str:
        """``INC-<n>`` from ``incident_number_seq``.

        If a ticket row already maps this (workflow_id, run_id) its number is returned.
        Otherwise a retry takes a new number: sequences are not transactional, so a retried
        allocation leaves a gap (INC-7 then INC-9), as PagerDuty does; numbers stay unique.
        """
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                _ALLOCATE, {"workflow_id": data.workflow_id, "run_id": data.run_id}
            )
            row = await cur.fetchone()
        assert row is not None
        number: str = row[0]
        return number

    @activity.defn(name=OPEN_INCIDENT)
    async def open_incident(self, data: RecordIncidentInput) -> str:
        """A new incident's number and its first ticket row and events, in one transaction:
        one activity where there were two (``allocate_incident_number`` then the first
        ``record_incident``). A retry finds the row of its run and keeps that number."""
        started = time.perf_counter()
        snapshot = data.snapshot
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                _ALLOCATE, {"workflow_id": snapshot.workflow_id, "run_id": snapshot.run_id}
            )
            row = await cur.fetchone()
            assert row is not None
            number: str = row[0]
            numbered = snapshot.model_copy(update={"number": number})
            events = _event_params(number, data.events)
            async with conn.pipeline():
                await conn.execute(_UPSERT_INCIDENT, _incident_row(numbered))
                if events is not None:
                    await conn.execute(_UPSERT_EVENTS, events)
                await conn.execute(REFRESH_SEARCH, (number,))
        ticket_write(activity_meter(), time.perf_counter() - started)
        return number

    @activity.defn(name=RECORD_INCIDENT)
    async def record_incident(self, data: RecordIncidentInput) -> None:
        """Upsert the incident row and its events, and refresh its search document, in one
        transaction (one round trip)."""
        row = _incident_row(data.snapshot)
        events = _event_params(data.snapshot.number, data.events)
        started = time.perf_counter()
        async with self._pool.connection() as conn, conn.pipeline(), conn.transaction():
            await conn.execute(_UPSERT_INCIDENT, row)
            if events is not None:
                await conn.execute(_UPSERT_EVENTS, events)
            for sql, params in _link_writes(data.snapshot.number, data.events):
                await conn.execute(sql, params)
            await conn.execute(REFRESH_SEARCH, (data.snapshot.number,))
        ticket_write(activity_meter(), time.perf_counter() - started)


def _number_seq(number: str) -> int | None:
    """The numeric part of ``INC-<n>``; ``None`` for a foreign format. Empty is a bug."""
    if not number:
        raise ApplicationError(
            "incident has no number yet: allocate_incident_number must run first",
            type=FailureType.MISSING_INCIDENT_NUMBER,
            non_retryable=True,
        )
    match = _NUMBER.match(number)
    return int(match.group(1)) if match else None


def _incident_row(snapshot: IncidentSnapshot) -> dict[str, Any]:
    summary = snapshot.summary().model_dump(mode="json")
    return {
        "number": snapshot.number,
        "number_seq": _number_seq(snapshot.number),
        "workflow_id": snapshot.workflow_id,
        "run_id": snapshot.run_id,
        "title": snapshot.title,
        "description": snapshot.description,
        "service": snapshot.service,
        "status": snapshot.status.value,
        "severity": snapshot.severity.value,
        "priority": snapshot.priority.value,
        "impact": snapshot.impact.value,
        "urgency": snapshot.urgency.value,
        "category": snapshot.category.value,
        "labels": Jsonb(snapshot.labels),
        "dedup_key": snapshot.dedup_key,
        "source": snapshot.source,
        "alert_count": snapshot.alert_count,
        "commander": snapshot.responders.get(Role.COMMANDER),
        "escalation_level": snapshot.escalation.max_level,
        "breaches": Jsonb(summary["breaches"]),
        "snapshot": Jsonb(summary),
        "last_seq": snapshot.last_seq,
        "created_at": snapshot.created_at,
        "acknowledged_at": snapshot.acknowledged_at,
        "mitigated_at": snapshot.mitigated_at,
        "resolved_at": snapshot.resolved_at,
        "closed_at": snapshot.closed_at,
        "paused_seconds": snapshot.paused_seconds(),
        "paused_since": snapshot.paused.since if snapshot.paused else None,
        "paused_reason": snapshot.paused.reason if snapshot.paused else None,
        "drill": snapshot.drill,
    }


def _event_params(number: str, events: Sequence[TimelineEvent]) -> dict[str, Any] | None:
    """Column arrays for ``_UPSERT_EVENTS``; one row per seq (the last one given wins)."""
    if not events:
        return None
    by_seq = {event.seq: event for event in events}
    ordered = [by_seq[seq] for seq in sorted(by_seq)]
    return {
        "number": number,
        "seqs": [e.seq for e in ordered],
        "ats": [e.at for e in ordered],
        "actors": [e.actor for e in ordered],
        "kinds": [e.kind.value for e in ordered],
        "details": [
            json.dumps(e.model_dump(mode="json", include={"details"})["details"]) for e in ordered
        ],
    }
