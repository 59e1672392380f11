"""SQL over the ``reviews`` and ``action_items`` tables, for the client surfaces.

Starters never import ``activities``; these reads need no workflow, so they go straight to
PostgreSQL (the system of record). Each query takes an open connection (the API and the
dashboard lend one from their pool); the ``database_url`` wrappers open a short-lived one
(``ReviewClient``).

One write lives here: :func:`change_finished_item`, for an action item whose review
workflow has already finished (a review completed before the workflow tracked its items).
Every other change of an action item goes through the review workflow's Update, which
writes the row through an activity.
"""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from schemas.action_item_sql import ACTION_ITEM_COLUMNS, CHANGE_ACTION_ITEM, change_parameters
from schemas.review import ActionItem, ActionItemChange, ActionItemStatus, ReviewRecord

_REVIEW = """
SELECT number, workflow_id, status, facilitator, attendees, scheduled_at, document, summary,
       created_at, updated_at, completed_at
  FROM reviews WHERE number = %s
"""


#: open and past its due instant (rows from before ``due_at`` existed: past their date)
OVERDUE_SQL = (
    "status = 'open' AND (due_at <= %(now)s OR (due_at IS NULL AND due_date < %(now)s::date))"
)

_ITEMS = f"""
SELECT {ACTION_ITEM_COLUMNS}
  FROM action_items
 WHERE (%(number)s::text IS NULL OR number = %(number)s)
   AND (%(service)s::text IS NULL OR service = %(service)s)
   AND (%(owner)s::text IS NULL OR owner = %(owner)s)
   AND (%(status)s::text IS NULL OR status = %(status)s)
   AND (NOT %(overdue)s OR ({OVERDUE_SQL}))
 ORDER BY due_at NULLS LAST, due_date NULLS LAST, id
 LIMIT %(limit)s
"""

_ITEM = f"SELECT {ACTION_ITEM_COLUMNS} FROM action_items WHERE id = %s"


class ItemFilters(BaseModel):
    number: str | None = None
    service: str | None = None
    owner: str | None = None
    status: ActionItemStatus | None = None
    #: open and past due at ``now``
    overdue: bool = False
    now: datetime | None = None
    limit: int = Field(default=500, ge=1, le=1000)


async def review(conn: psycopg.AsyncConnection, number: str) -> ReviewRecord | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_REVIEW, (number,))
    row = await cur.fetchone()
    return ReviewRecord.model_validate(row) if row else None


async def action_items(conn: psycopg.AsyncConnection, filters: ItemFilters) -> list[ActionItem]:
    """Action items matching ``filters``, soonest due first (undated last)."""
    params = filters.model_dump()
    params["status"] = filters.status.value if filters.status else None
    if params["now"] is None:
        params["now"] = (await (await conn.execute("SELECT now()")).fetchone() or [None])[0]
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_ITEMS, params)
    return [ActionItem.model_validate(row) for row in await cur.fetchall()]


async def action_item(conn: psycopg.AsyncConnection, item_id: int) -> ActionItem | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_ITEM, (item_id,))
    row = await cur.fetchone()
    return ActionItem.model_validate(row) if row else None


async def change_finished_item(
    conn: psycopg.AsyncConnection, change: ActionItemChange
) -> ActionItem | None:
    """Apply ``change`` (due already resolved) to an item whose review workflow has
    finished: no reminder is pending for it, so there is nothing to stop."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        CHANGE_ACTION_ITEM,
        change_parameters(change),
    )
    row = await cur.fetchone()
    return ActionItem.model_validate(row) if row else None


# -- database_url wrappers (ReviewClient) ---------------------------------------------------
async def fetch_review(database_url: str, number: str) -> ReviewRecord | None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return await review(conn, number)


async def open_action_items(
    database_url: str, *, service: str | None = None, owner: str | None = None, limit: int = 500
) -> list[ActionItem]:
    """Open action items, soonest due first (undated last), optionally of one service/owner."""
    filters = ItemFilters(service=service, owner=owner, status=ActionItemStatus.OPEN, limit=limit)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return await action_items(conn, filters)
