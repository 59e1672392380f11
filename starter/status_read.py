"""The status page's reads and writes in PostgreSQL, never Temporal: the public facts of the
incidents of public services (``schemas.status_page.IncidentFacts``) and the subscriber rows
the signed links change.

Only the columns the page may use are selected: never the title, description, labels,
snapshot or notes. A status update's text is selected only when it was posted public.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from schemas.status_page import HISTORY_DAYS, IncidentFacts, PublicUpdate

Pool = AsyncConnectionPool[psycopg.AsyncConnection[Any]]

_INCIDENTS = """
SELECT number, service, severity, status, created_at, mitigated_at,
       coalesce(resolved_at, closed_at) AS resolved_at
FROM incidents
WHERE service = ANY(%(services)s)
  AND NOT drill
  AND (coalesce(resolved_at, closed_at) IS NULL OR coalesce(resolved_at, closed_at) >= %(since)s)
ORDER BY created_at DESC
LIMIT 1000
"""
_UPDATES = """
SELECT number, seq, at,
       (details->>'public') = 'true' AS public,
       details->>'phase' AS phase,
       details->>'component_status' AS component_status,
       CASE WHEN (details->>'public') = 'true' THEN details->>'text' ELSE '' END AS text
FROM incident_events
WHERE kind = 'status_update_posted' AND number = ANY(%(numbers)s)
  AND ((details->>'public') = 'true' OR details ? 'component_status')
ORDER BY number, seq
"""
_CONFIRM = """
UPDATE status_subscribers SET confirmed_at = coalesce(confirmed_at, now())
WHERE id = %s AND unsubscribed_at IS NULL
"""
_UNSUBSCRIBE = """
UPDATE status_subscribers SET unsubscribed_at = coalesce(unsubscribed_at, now())
WHERE id = %s
"""


async def incident_facts(pool: Pool, services: list[str], now: datetime) -> list[IncidentFacts]:
    """Incidents of ``services`` open now or resolved within the page's history, with their
    status updates (text only for public ones)."""
    if not services:
        return []
    since = now - timedelta(days=HISTORY_DAYS)
    async with pool.connection() as conn:
        cur = await conn.execute(_INCIDENTS, {"services": services, "since": since})
        rows = await cur.fetchall()
        numbers = [r[0] for r in rows]
        cur = await conn.execute(_UPDATES, {"numbers": numbers})
        updates: dict[str, list[PublicUpdate]] = {}
        for number, seq, at, public, phase, component_status, text in await cur.fetchall():
            updates.setdefault(number, []).append(
                PublicUpdate(
                    seq=seq,
                    at=at,
                    public=bool(public),
                    phase=phase,
                    component_status=component_status,
                    text=text or "",
                )
            )
    return [
        IncidentFacts(
            number=number,
            service=service,
            severity=severity,
            status=status,
            created_at=created_at,
            mitigated_at=mitigated_at,
            resolved_at=resolved_at,
            updates=updates.get(number, []),
        )
        for number, service, severity, status, created_at, mitigated_at, resolved_at in rows
    ]


async def confirm_subscriber(pool: Pool, subscriber: str) -> bool:
    """Confirm a subscriber (idempotent); ``False`` when it unsubscribed meanwhile or was
    never recorded."""
    async with pool.connection() as conn:
        cur = await conn.execute(_CONFIRM, (subscriber,))
        return cur.rowcount > 0


async def unsubscribe(pool: Pool, subscriber: str) -> None:
    """Stop every mail to a subscriber (idempotent; an unknown one changes nothing)."""
    async with pool.connection() as conn:
        await conn.execute(_UNSUBSCRIBE, (subscriber,))


class Told(BaseModel):
    """One recipient of one status update (a row of ``notifications``)."""

    recipient: str
    channel: str
    status: str


_TOLD = """
SELECT seq, recipient, channel, status FROM notifications
WHERE number = %s AND event_kind = 'status_update_posted' ORDER BY seq, id
"""
_SUBSCRIBERS_TOLD = """
SELECT seq, count(*) FROM status_deliveries
WHERE number = %s AND status = 'sent' GROUP BY seq
"""


async def told_about_updates(
    pool: Pool, number: str
) -> tuple[dict[int, list[Told]], dict[int, int]]:
    """Who was told about each of an incident's status updates (by event seq), and how
    many subscribers got each public one."""
    told: dict[int, list[Told]] = {}
    async with pool.connection() as conn:
        for seq, recipient, channel, status in await (
            await conn.execute(_TOLD, (number,))
        ).fetchall():
            told.setdefault(seq, []).append(
                Told(recipient=recipient, channel=channel, status=status)
            )
        rows = await (await conn.execute(_SUBSCRIBERS_TOLD, (number,))).fetchall()
    return told, {seq: count for seq, count in rows}
