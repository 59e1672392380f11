"""Read side of the ticket store: listings, one ticket, its timeline, the summary report.

Plain SQL over the tables the ticket activities write (``activities/migrations``); this
module only reads, so ``starter`` needs no import from ``activities``. Listings page by a
keyset cursor on ``(created_at, number_seq)``, newest first, which the
``incidents_created_idx`` index serves and which stays stable while new incidents arrive.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field, ValidationError

from schemas.enums import Category, Clock, Impact, Priority, Severity, Status, Urgency
from schemas.incident import IncidentSnapshot, TimelineEvent

Pool = AsyncConnectionPool[psycopg.AsyncConnection]

#: the clocks an ``sla_breached`` event can name, and the column that marks each one met
SLA_CLOCKS: dict[Clock, str] = {
    Clock.ACK: "acknowledged_at",
    Clock.MITIGATE: "mitigated_at",
    Clock.RESOLVE: "resolved_at",
}


class InvalidCursor(ValueError):
    """A ``cursor`` query parameter that this module did not produce."""


# ---------------------------------------------------------------------------- models
class IncidentListItem(BaseModel):
    number: str
    title: str
    service: str
    status: Status
    severity: Severity
    priority: Priority
    impact: Impact
    urgency: Urgency
    category: Category
    source: str
    drill: bool = False
    dedup_key: str | None = None
    alert_count: int
    commander: str | None = None
    escalation_level: int
    created_at: datetime
    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    updated_at: datetime
    #: the reason of the pause in force (its SLA clocks stopped, docs/sla.md)
    paused_reason: str | None = None


class IncidentPage(BaseModel):
    items: list[IncidentListItem]
    #: pass as ``cursor`` for the next (older) page; ``None`` on the last page
    next_cursor: str | None = None


class ListFilters(BaseModel):
    statuses: list[Status] = Field(default_factory=list)
    severities: list[Severity] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None


class Ticket(BaseModel):
    """The ticket row of one incident: where its workflow runs, and its last snapshot."""

    number: str
    workflow_id: str
    run_id: str
    status: Status
    snapshot: IncidentSnapshot


class SlaCompliance(BaseModel):
    """One clock at one severity: incidents that met it, that breached it, and the ratio.

    Incidents whose clock is still running (or was stopped by a cancel) count in neither.
    """

    clock: Clock
    severity: Severity
    met: int
    breached: int
    compliance: float | None = Field(description="met / (met + breached); null when both are 0")


class SeverityTimes(BaseModel):
    severity: Severity
    count: int
    mtta_seconds: float | None = None
    mttr_seconds: float | None = None
    #: MTTR without the time the clocks were paused (docs/sla.md)
    mttr_net_seconds: float | None = None
    #: time spent paused, pauses in force counted up to now
    paused_seconds: float = 0.0


class SummaryReport(BaseModel):
    since: datetime | None = None
    until: datetime | None = None
    service: str | None = None
    include_drills: bool = False
    total: int
    by_severity: dict[str, int]
    by_category: dict[str, int]
    by_service: dict[str, int]
    by_status: dict[str, int]
    #: mean time from trigger to acknowledgement, over acknowledged incidents
    mtta_seconds: float | None = None
    #: mean time from trigger to resolution, over resolved incidents
    mttr_seconds: float | None = None
    #: the same without the time the clocks were paused (waiting on a vendor, docs/sla.md)
    mttr_net_seconds: float | None = None
    #: time spent paused, pauses in force counted up to now
    paused_seconds: float = 0.0
    #: incidents that were paused at least once
    paused_incidents: int = 0
    times_by_severity: list[SeverityTimes]
    sla: list[SlaCompliance]


# ---------------------------------------------------------------------------- cursor
#: ``<microseconds since 1970 UTC>-<number sequence>`` of the last row of a page: every
#: string of this shape is a position in the keyset, so any that matches is accepted (one
#: not handed out by the API just starts the page elsewhere)
CURSOR_PATTERN = r"^[0-9]{1,16}-[0-9]{1,18}$"
CURSOR_MAX_LENGTH = 35
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(created_at: datetime, number_seq: int) -> str:
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    return f"{max(micros, 0)}-{max(number_seq, 0)}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise InvalidCursor("cursor is not one this API returned")
    micros, _, seq = cursor.partition("-")
    return _EPOCH + timedelta(microseconds=int(micros)), int(seq)


# ---------------------------------------------------------------------------- queries
_LIST_COLUMNS = sql.SQL(
    ", ".join(
        [
            "number",
            "number_seq",
            "title",
            "service",
            "status",
            "severity",
            "priority",
            "impact",
            "urgency",
            "category",
            "source",
            "drill",
            "dedup_key",
            "alert_count",
            "commander",
            "escalation_level",
            "created_at",
            "acknowledged_at",
            "mitigated_at",
            "resolved_at",
            "closed_at",
            "updated_at",
            "paused_reason",
        ]
    )
)


def _filter_clauses(filters: ListFilters, params: dict[str, Any]) -> list[sql.Composable]:
    clauses: list[sql.Composable] = []
    if filters.statuses:
        clauses.append(sql.SQL("status = ANY(%(statuses)s)"))
        params["statuses"] = [s.value for s in filters.statuses]
    if filters.severities:
        clauses.append(sql.SQL("severity = ANY(%(severities)s)"))
        params["severities"] = [s.value for s in filters.severities]
    if filters.services:
        clauses.append(sql.SQL("service = ANY(%(services)s)"))
        params["services"] = list(filters.services)
    if filters.since is not None:
        clauses.append(sql.SQL("created_at >= %(since)s"))
        params["since"] = filters.since
    if filters.until is not None:
        clauses.append(sql.SQL("created_at < %(until)s"))
        params["until"] = filters.until
    return clauses


async def list_incidents(
    pool: Pool, filters: ListFilters, *, limit: int = 50, cursor: str | None = None
) -> IncidentPage:
    """One page of incidents, newest first; raises :class:`InvalidCursor`."""
    params: dict[str, Any] = {"limit": limit + 1}
    clauses = _filter_clauses(filters, params)
    if cursor:
        params["c_at"], params["c_seq"] = decode_cursor(cursor)
        clauses.append(sql.SQL("(created_at, number_seq) < (%(c_at)s, %(c_seq)s)"))
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("")
    query = sql.SQL(
        "SELECT {cols} FROM incidents{where} "
        "ORDER BY created_at DESC, number_seq DESC LIMIT %(limit)s"
    ).format(cols=_LIST_COLUMNS, where=where)
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(query, params)
        rows = await cur.fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(last["created_at"], last["number_seq"] or 0)
    return IncidentPage(
        items=[IncidentListItem.model_validate(r) for r in rows], next_cursor=next_cursor
    )


async def ticket(pool: Pool, number: str) -> Ticket | None:
    """The ticket row of ``number`` (snapshot without timeline), or ``None``."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT number, workflow_id, run_id, status, closed_at, snapshot "
            "FROM incidents WHERE number = %s",
            (number,),
        )
        row = await cur.fetchone()
    if row is None:
        return None
    snapshot = IncidentSnapshot.model_validate(row["snapshot"])
    # Columns may be newer than the stored snapshot (a review closing the incident).
    snapshot = snapshot.model_copy(
        update={
            "status": Status(row["status"]),
            "closed_at": row["closed_at"] or snapshot.closed_at,
        }
    )
    return Ticket(
        number=row["number"],
        workflow_id=row["workflow_id"],
        run_id=row["run_id"],
        status=Status(row["status"]),
        snapshot=snapshot,
    )


async def events(pool: Pool, number: str) -> list[TimelineEvent]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT seq, at, actor, kind, details FROM incident_events "
            "WHERE number = %s ORDER BY seq",
            (number,),
        )
        rows = await cur.fetchall()
    out = []
    for row in rows:
        try:
            out.append(TimelineEvent.model_validate(row))
        except ValidationError:
            continue  # an event kind this version does not know: skip, do not fail the read
    return out


async def highest_number_and_workflow(pool: Pool, number: str) -> tuple[int, str | None]:
    """The highest incident number ever allocated (0 before the first) and the workflow id
    of ``number``'s ticket (None when it has none yet), in one read."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT s.last_value, s.is_called, "
            "(SELECT workflow_id FROM incidents WHERE number = %s) FROM incident_number_seq s",
            (number,),
        )
        row = await cur.fetchone()
    if row is None:
        return 0, None
    last_value, is_called, workflow_id = row
    return (int(last_value) if is_called else 0), (str(workflow_id) if workflow_id else None)


async def notification_counts(pool: Pool) -> dict[str, int]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT status, count(*) FROM notifications GROUP BY status")
        rows = await cur.fetchall()
    return {str(status): int(count) for status, count in rows}


# ---------------------------------------------------------------------------- report
_SCOPE = """
WITH scope AS (
    SELECT * FROM incidents
     WHERE (%(since)s::timestamptz IS NULL OR created_at >= %(since)s::timestamptz)
       AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s::timestamptz)
       AND (%(service)s::text IS NULL OR service = %(service)s::text)
       AND (%(include_drills)s::boolean OR NOT drill)
)
"""

_COUNTS = (
    _SCOPE
    + """
SELECT 'severity' AS dim, severity AS key, count(*) AS n FROM scope GROUP BY severity
UNION ALL SELECT 'category', category, count(*) FROM scope GROUP BY category
UNION ALL SELECT 'service', service, count(*) FROM scope GROUP BY service
UNION ALL SELECT 'status', status, count(*) FROM scope GROUP BY status
"""
)

_TIMES = (
    _SCOPE
    + """
SELECT severity,
       count(*) AS n,
       EXTRACT(EPOCH FROM avg(acknowledged_at - created_at)) AS mtta,
       EXTRACT(EPOCH FROM avg(resolved_at - created_at)) AS mttr,
       EXTRACT(EPOCH FROM avg(resolved_at - created_at - make_interval(secs => paused_seconds)))
           AS mttr_net,
       coalesce(sum(paused_seconds + coalesce(EXTRACT(EPOCH FROM now() - paused_since), 0)), 0)
           AS paused,
       count(*) FILTER (WHERE paused_seconds > 0 OR paused_since IS NOT NULL) AS paused_n
  FROM scope GROUP BY ROLLUP (severity)
"""
)

_SLA = (
    _SCOPE
    + """
, breached AS (
    SELECT DISTINCT e.number, e.details->>'clock' AS clock
      FROM incident_events e JOIN scope s ON s.number = e.number
     WHERE e.kind = 'sla_breached'
)
SELECT s.severity, c.clock,
       count(*) FILTER (WHERE b.number IS NOT NULL) AS breached,
       count(*) FILTER (WHERE b.number IS NULL AND CASE c.clock
            WHEN 'ack' THEN s.acknowledged_at IS NOT NULL
            WHEN 'mitigate' THEN s.mitigated_at IS NOT NULL
            ELSE s.resolved_at IS NOT NULL END) AS met
  FROM scope s
 CROSS JOIN (VALUES ('ack'), ('mitigate'), ('resolve')) AS c(clock)
  LEFT JOIN breached b ON b.number = s.number AND b.clock = c.clock
 GROUP BY s.severity, c.clock
"""
)


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


async def summary(
    pool: Pool,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    service: str | None = None,
    include_drills: bool = False,
) -> SummaryReport:
    """Counts, MTTA/MTTR and SLA compliance over incidents created in ``[since, until)``;
    drills only when ``include_drills``."""
    params = {
        "since": since,
        "until": until,
        "service": service,
        "include_drills": include_drills,
    }
    async with pool.connection() as conn:
        counts = await (await conn.execute(_COUNTS, params)).fetchall()
        times = await (await conn.execute(_TIMES, params)).fetchall()
        sla_rows = await (await conn.execute(_SLA, params)).fetchall()
    dims: dict[str, dict[str, int]] = {d: {} for d in ("severity", "category", "service", "status")}
    for dim, key, n in counts:
        dims[dim][key] = int(n)
    overall = next((r for r in times if r[0] is None), None)
    per_severity = [
        SeverityTimes(
            severity=Severity(sev),
            count=int(n),
            mtta_seconds=_seconds(a),
            mttr_seconds=_seconds(r),
            mttr_net_seconds=_seconds(net),
            paused_seconds=_seconds(paused) or 0.0,
        )
        for sev, n, a, r, net, paused, _ in sorted(
            (r for r in times if r[0] is not None), key=lambda r: r[0]
        )
    ]
    sla = [
        SlaCompliance(
            clock=Clock(clock),
            severity=Severity(sev),
            met=int(met),
            breached=int(breached),
            compliance=round(met / (met + breached), 4) if met + breached else None,
        )
        for sev, clock, breached, met in sorted(
            sla_rows, key=lambda r: (r[0], list(SLA_CLOCKS).index(Clock(r[1])))
        )
    ]
    return SummaryReport(
        since=since,
        until=until,
        service=service,
        include_drills=include_drills,
        total=sum(dims["severity"].values()),
        by_severity=dims["severity"],
        by_category=dims["category"],
        by_service=dims["service"],
        by_status=dims["status"],
        mtta_seconds=_seconds(overall[2]) if overall else None,
        mttr_seconds=_seconds(overall[3]) if overall else None,
        mttr_net_seconds=_seconds(overall[4]) if overall else None,
        paused_seconds=(_seconds(overall[5]) or 0.0) if overall else 0.0,
        paused_incidents=int(overall[6]) if overall else 0,
        times_by_severity=per_severity,
        sla=sla,
    )


def as_utc(value: datetime | None) -> datetime | None:
    """Naive instants are taken as UTC; raises ``OverflowError`` at the edge of time."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
