"""Similar past incidents: the one ranking the API, the incident page and the triggered
notification share (issue 19).

The SQL lives here, beside the models it fills and the words that explain a match, because
two layers run it: ``starter.knowledge_read`` (API and dashboard) and the worker's ``notify``
activity ("Seen before: INC-12, resolved in 14m: raised pgbouncer pool"). It reads the
columns and functions of ``activities/migrations/0005_knowledge_search.sql``.

A candidate is an earlier incident (not this one, not a drill) among the 200 best full-text
matches of the probe's title and description terms (GIN), or any of the same service and
dedup-key family (btree). Its score adds the text rank (title terms weigh most, postmortem
terms least), the pg_trgm similarity of the titles, and a bonus for the same service and a
bigger one for the same family. Scoring only candidates keeps a look-up near 10 ms at 10,000
incidents (``bench/similar.py``); a trigram arm over every title cost 60 ms there.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from schemas.durations import format_duration
from schemas.enums import Severity, Status

#: how many similar incidents the API returns by default and the incident page shows
DEFAULT_LIMIT = 5
MAX_LIMIT = 50
#: probe terms searched for: the title's first, then the description's in order
PROBE_TERMS = 24
#: the best full-text matches scored further (with every one of the same family)
CANDIDATES = 200
#: a title this alike (pg_trgm similarity) is called "similar title"
SIMILAR_TITLE = 0.3

#: parameters: number, title, text, service, dedup_key, before, resolved_only, limit
SIMILAR_SQL = f"""
WITH probe AS MATERIALIZED (
    SELECT q.lexemes,
           CASE WHEN cardinality(q.lexemes) > 0 THEN array_to_string(
               ARRAY(SELECT quote_literal(l) FROM unnest(q.lexemes) AS l), ' | ')::tsquery
           END AS query,
           incident_dedup_family(%(dedup_key)s::text) AS family
      FROM (SELECT ARRAY(
                SELECT u.lexeme
                  FROM unnest(setweight(to_tsvector('english', %(title)s::text), 'A')
                           || to_tsvector('english', left(%(text)s::text, 4000))) AS u
                 WHERE u.lexeme !~ '[''\\\\]'
                 ORDER BY ('A' = ANY(u.weights)) DESC, u.positions[1]
                 LIMIT {PROBE_TERMS}) AS lexemes) AS q
),
-- the best text matches (GIN full text) and the same service and dedup-key family (btree);
-- only these are scored further
text_matches AS (
    SELECT c.number,
           ts_rank('{{0.1, 0.2, 0.4, 1.0}}', c.search, (SELECT query FROM probe), 32)
               AS text_rank
      FROM incidents c
     WHERE c.search @@ (SELECT query FROM probe)
       AND NOT c.drill
       AND c.number <> %(number)s::text
       AND c.created_at < %(before)s::timestamptz
     ORDER BY text_rank DESC
     LIMIT {CANDIDATES}
),
candidates AS (
    SELECT number, max(text_rank) AS text_rank
      FROM (SELECT number, text_rank FROM text_matches
            UNION ALL
            SELECT number, 0 FROM incidents
             WHERE service = %(service)s::text AND dedup_family = (SELECT family FROM probe)
               AND NOT drill
               AND number <> %(number)s::text
               AND created_at < %(before)s::timestamptz) AS arms
     GROUP BY number
),
ranked AS (
    SELECT c.number, c.title, c.service, c.status, c.severity, c.created_at, c.resolved_at,
           c.resolution, c.search, m.text_rank,
           similarity(c.title, %(title)s::text) AS title_similarity,
           c.service = %(service)s::text AS same_service,
           coalesce(c.dedup_family = (SELECT family FROM probe), FALSE) AS same_family
      FROM candidates m JOIN incidents c USING (number)
     WHERE NOT %(resolved_only)s::boolean OR c.resolved_at IS NOT NULL
),
top AS (
    SELECT r.*,
           r.text_rank + r.title_similarity
           + CASE WHEN r.same_service THEN 0.25 ELSE 0 END
           + CASE WHEN r.same_family THEN 0.5 ELSE 0 END AS score
      FROM ranked r
     ORDER BY score DESC, r.created_at DESC, r.number DESC
     LIMIT %(limit)s
)
SELECT t.number, t.title, t.service, t.status, t.severity, t.created_at, t.resolved_at,
       t.resolution, t.score, t.title_similarity, t.same_service, t.same_family,
       EXTRACT(EPOCH FROM t.resolved_at - t.created_at) AS time_to_resolve_seconds,
       (SELECT count(*) FROM unnest(t.search) AS u
         WHERE u.lexeme = ANY(p.lexemes)) AS shared_terms
  FROM top t, probe p
 ORDER BY t.score DESC, t.created_at DESC, t.number DESC
"""


class SimilarProbe(BaseModel):
    """What an incident is compared by: its own row, or a snapshot being triggered."""

    number: str
    title: str
    description: str = ""
    service: str
    dedup_key: str | None = None
    #: only incidents created before this instant count (past incidents)
    before: datetime

    def params(self, *, limit: int = DEFAULT_LIMIT, resolved_only: bool = False) -> dict[str, Any]:
        return {
            "number": self.number,
            "title": self.title,
            "text": self.description,
            "service": self.service,
            "dedup_key": self.dedup_key,
            "before": self.before,
            "resolved_only": resolved_only,
            "limit": limit,
        }


class PastIncident(BaseModel):
    """What a similar incident or a search hit says of an incident."""

    number: str
    title: str
    service: str
    status: Status
    severity: Severity
    created_at: datetime
    resolved_at: datetime | None = None
    #: the resolution text its responder gave, if any
    resolution: str | None = None


class SimilarIncident(PastIncident):
    """One past incident like the probe, with why it ranked."""

    time_to_resolve_seconds: float | None = None
    score: float = Field(description="higher ranks first; comparable within one answer only")
    same_service: bool
    #: same service and dedup key once its numbered tokens are masked ("disk-full:db-#")
    same_family: bool
    #: pg_trgm similarity of the titles, 0..1
    title_similarity: float
    #: the probe's title and description terms (stemmed) this incident's text also holds
    shared_terms: int
    #: e.g. ["same service", "3 shared terms"]
    reasons: list[str]
    #: the reasons as one phrase: "same service, 3 shared terms"
    why: str


class SimilarPage(BaseModel):
    number: str
    items: list[SimilarIncident]


def similar_from_row(row: dict[str, Any]) -> SimilarIncident:
    """A ``SIMILAR_SQL`` row with its reasons in words."""
    same_family, same_service = bool(row["same_family"]), bool(row["same_service"])
    similarity = round(float(row["title_similarity"] or 0), 3)
    shared = int(row["shared_terms"] or 0)
    reasons: list[str] = []
    if same_family:
        reasons.append("same service and dedup-key family")
    elif same_service:
        reasons.append("same service")
    if similarity >= SIMILAR_TITLE:
        reasons.append(f"similar title ({round(similarity * 100)}%)")
    if shared:
        reasons.append(f"{shared} shared term{'' if shared == 1 else 's'}")
    ttr = row["time_to_resolve_seconds"]
    return SimilarIncident(
        number=row["number"],
        title=row["title"],
        service=row["service"],
        status=row["status"],
        severity=row["severity"],
        created_at=row["created_at"],
        resolved_at=row["resolved_at"],
        resolution=row["resolution"],
        time_to_resolve_seconds=float(ttr) if ttr is not None else None,
        score=round(float(row["score"]), 4),
        same_service=same_service,
        same_family=same_family,
        title_similarity=similarity,
        shared_terms=shared,
        reasons=reasons,
        why=", ".join(reasons) or "related terms",
    )


def is_strong(match: SimilarIncident) -> bool:
    """Worth a line in a page: same family, a clearly similar title, or 3+ shared terms
    (one shared common word like "error" is not "seen before")."""
    return match.same_family or match.title_similarity >= 0.5 or match.shared_terms >= 3


def seen_before_line(matches: list[SimilarIncident]) -> str | None:
    """ "Seen before: INC-12, resolved in 14m: raised pgbouncer pool" for the best resolved
    strong match, or ``None``."""
    for match in matches:
        if match.time_to_resolve_seconds is None or not is_strong(match):
            continue
        took = format_duration(timedelta(seconds=round(match.time_to_resolve_seconds)))
        line = f"Seen before: {match.number}, resolved in {took}"
        if match.resolution:
            line += f": {' '.join(match.resolution.split())[:200]}"
        return line
    return None
