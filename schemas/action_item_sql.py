"""The one SQL text that changes an action item, shared by both of its writers.

The review workflow's activity changes an item while the review runs; the API changes it
directly once the review workflow has finished (``starter/review_queries``). The two may not
import each other, so the statement lives here, beside the ``ActionItemChange`` it applies.
"""

from __future__ import annotations

from typing import Any

from schemas.review import ActionItemChange

ACTION_ITEM_COLUMNS = (
    "id, number, service, owner, title, due_date, due_at, status, created_at, updated_at, "
    "closed_at, updated_by"
)

#: closed_at is set when the item leaves 'open' and cleared when it is reopened;
#: ``number`` NULL matches the item by id alone
CHANGE_ACTION_ITEM = f"""
UPDATE action_items SET
    status = COALESCE(%(status)s, status),
    owner = COALESCE(%(owner)s, owner),
    due_date = CASE WHEN %(set_due)s THEN %(due_date)s ELSE due_date END,
    due_at = CASE WHEN %(set_due)s THEN %(due_at)s ELSE due_at END,
    closed_at = CASE
        WHEN %(status)s IS NULL OR %(status)s = status THEN closed_at
        WHEN %(status)s = 'open' THEN NULL
        ELSE now() END,
    updated_by = %(actor)s,
    updated_at = now()
 WHERE id = %(id)s AND (%(number)s::text IS NULL OR number = %(number)s)
RETURNING {ACTION_ITEM_COLUMNS}
"""


def change_parameters(change: ActionItemChange, number: str | None = None) -> dict[str, Any]:
    """The parameters of :data:`CHANGE_ACTION_ITEM` for ``change`` (its due already resolved)."""
    return {
        "id": change.id,
        "number": number,
        "status": change.status.value if change.status else None,
        "owner": change.owner.strip() if change.owner else None,
        "set_due": change.clear_due or change.due_at is not None,
        "due_date": change.due_date,
        "due_at": change.due_at,
        "actor": change.actor,
    }
