"""Read side of what past incidents teach: similar incidents and full-text search.

Both read the search document the worker keeps on each ticket row
(``activities/migrations/0005_knowledge_search.sql``); the similar-incidents ranking itself
is ``schemas.similarity``, shared with the triggered notification's "Seen before" line.
"""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from schemas.incident_links import LINKS_SQL, LinkedIncident
from schemas.similarity import (
    DEFAULT_LIMIT,
    SIMILAR_SQL,
    PastIncident,
    SimilarIncident,
    SimilarProbe,
    similar_from_row,
)

Pool = AsyncConnectionPool[psycopg.AsyncConnection]

DEFAULT_SEARCH_LIMIT = 20
MAX_SEARCH_LIMIT = 100
#: the parts of an incident's search document, by the weight they are stored with
PARTS = {"a": "title", "b": "description", "c": "notes", "d": "postmortem"}

#: an incident row matches a query: its text (title, description, notes, resolutions,
#: postmortem) in full text, or its title contains the query as typed (a partial word);
#: parameters ``q`` and ``q_like`` (``match_params``). The board's search box uses it too.
MATCH = "(search @@ websearch_to_tsquery('english', %(q)s::text) OR title ILIKE %(q_like)s::text)"


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def match_params(q: str) -> dict[str, str]:
    return {"q": q, "q_like": f"%{escape_like(q)}%"}


class SearchHit(PastIncident):
    #: a drill (only with ``include_drills``): shown with its banner, never taken for real
    drill: bool = False
    #: the parts that match the whole query on their own: title, description, notes
    #: (notes, status updates, resolutions), postmortem
    matched_in: list[str]
    has_postmortem: bool
    #: fragments of the description, resolution or postmortem around the terms, which are
    #: set in «guillemets» (plain text)
    snippet: str
    rank: float


class SearchPage(BaseModel):
    q: str
    items: list[SearchHit]


class SimilarIncidents(BaseModel):
    """``GET /api/v1/incidents/{number}/similar``: past incidents like ``number``, best first."""

    number: str
    items: list[SimilarIncident] = Field(default_factory=list)


_PROBE = """
SELECT number, title, description, service, dedup_key, created_at AS before
  FROM incidents WHERE number = %s
"""

_SEARCH = f"""
WITH hits AS (
    SELECT i.number, i.title, i.service, i.status, i.severity, i.created_at, i.resolved_at,
           i.resolution, i.description, i.search, i.number_seq, i.drill,
           ts_rank('{{0.1, 0.2, 0.4, 1.0}}', i.search,
                   websearch_to_tsquery('english', %(q)s::text))
           + CASE WHEN i.title ILIKE %(q_like)s::text THEN 1 ELSE 0 END AS rank
      FROM incidents i
     WHERE {MATCH}
       AND (%(include_drills)s::boolean OR NOT i.drill)
     ORDER BY rank DESC, i.created_at DESC, i.number_seq DESC
     LIMIT %(limit)s
)
SELECT h.number, h.title, h.service, h.status, h.severity, h.created_at, h.resolved_at,
       h.resolution, h.drill, h.rank, r.document IS NOT NULL AS has_postmortem,
       ARRAY(SELECT w FROM unnest(ARRAY['a', 'b', 'c', 'd']) AS w
              WHERE ts_filter(h.search, ARRAY[w]::"char"[])
                    @@ websearch_to_tsquery('english', %(q)s::text)) AS parts,
       ts_headline('english',
                   concat_ws(' … ', nullif(h.description, ''), h.resolution, r.document),
                   websearch_to_tsquery('english', %(q)s::text),
                   'StartSel=«, StopSel=», MaxWords=25, MinWords=8, MaxFragments=2')
           AS snippet
  FROM hits h LEFT JOIN reviews r ON r.number = h.number
 ORDER BY h.rank DESC, h.created_at DESC, h.number_seq DESC
"""


async def similar(
    pool: Pool, number: str, *, limit: int = DEFAULT_LIMIT
) -> SimilarIncidents | None:
    """Past incidents like ``number`` (``None`` when it has no ticket row)."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_PROBE, (number,))
        row = await cur.fetchone()
        if row is None:
            return None
        probe = SimilarProbe.model_validate(row)
        await cur.execute(SIMILAR_SQL, probe.params(limit=limit))
        rows = await cur.fetchall()
    return SimilarIncidents(number=number, items=[similar_from_row(r) for r in rows])


async def search(
    pool: Pool, q: str, *, limit: int = DEFAULT_SEARCH_LIMIT, include_drills: bool = False
) -> SearchPage:
    """Incidents and postmortems matching ``q`` (web-search syntax: words, "a phrase",
    -not, or), best first; a title containing ``q`` as typed ranks above text matches.
    Drills are left out unless ``include_drills``, as from similar incidents and reports:
    what a search finds is taken as what happened."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        params = {**match_params(q), "limit": limit, "include_drills": include_drills}
        await cur.execute(_SEARCH, params)
        rows = await cur.fetchall()
    items = [
        SearchHit(
            **{k: v for k, v in r.items() if k not in ("parts", "snippet", "rank")},
            matched_in=[PARTS[p] for p in r["parts"]],
            snippet=" ".join((r["snippet"] or "").split()),
            rank=round(float(r["rank"]), 4),
        )
        for r in rows
    ]
    return SearchPage(q=q, items=items)


async def links(pool: Pool, number: str) -> list[LinkedIncident]:
    """Every link of ``number`` from the ticket store (an ended incident's too)."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(LINKS_SQL, (number,))
        return [LinkedIncident.model_validate(r) for r in await cur.fetchall()]
