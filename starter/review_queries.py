"""Read-only SQL over the ``reviews`` and ``action_items`` tables, for the client surfaces.

Starters never import ``activities``; these reads need no workflow, so they go straight to
PostgreSQL (the system of record) with one short-lived connection per call.
"""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from schemas.review import ActionItem, ReviewRecord

_REVIEW = """
SELECT number, workflow_id, status, facilitator, attendees, scheduled_at, document, summary,
       created_at, updated_at, completed_at
  FROM reviews WHERE number = %s
"""

_OPEN_ITEMS = """
SELECT id, number, service, owner, title, due_date, status, created_at
  FROM action_items
 WHERE status = 'open'
   AND (%(service)s::text IS NULL OR service = %(service)s)
   AND (%(owner)s::text IS NULL OR owner = %(owner)s)
 ORDER BY due_date NULLS LAST, id
 LIMIT %(limit)s
"""


async def fetch_review(database_url: str, number: str) -> ReviewRecord | None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_REVIEW, (number,))
        row = await cur.fetchone()
    return ReviewRecord.model_validate(row) if row else None


async def open_action_items(
    database_url: str, *, service: str | None = None, owner: str | None = None, limit: int = 500
) -> list[ActionItem]:
    """Open action items, soonest due first (undated last), optionally of one service/owner."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_OPEN_ITEMS, {"service": service, "owner": owner, "limit": limit})
        rows = await cur.fetchall()
    return [ActionItem.model_validate(row) for row in rows]
