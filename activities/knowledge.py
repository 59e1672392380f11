"""What the worker knows of past incidents: the search document it keeps current, and the
"Seen before" line of a triggered notification (``schemas.similarity``)."""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from schemas.incident import IncidentSnapshot
from schemas.similarity import SIMILAR_SQL, SimilarProbe, seen_before_line, similar_from_row

#: rewrite one incident's search document (0005_knowledge_search.sql owns its definition);
#: run after every write of its row, timeline or postmortem, in the same transaction
REFRESH_SEARCH = "SELECT refresh_incident_search(%s)"


async def seen_before(pool: AsyncConnectionPool[Any], incident: IncidentSnapshot) -> str | None:
    """The best resolved past incident like ``incident`` as one line, or ``None``."""
    probe = SimilarProbe(
        number=incident.number,
        title=incident.title,
        description=incident.description,
        service=incident.service,
        dedup_key=incident.dedup_key,
        before=incident.created_at,
    )
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(SIMILAR_SQL, probe.params(resolved_only=True))
        rows = await cur.fetchall()
    return seen_before_line([similar_from_row(r) for r in rows])
