"""Audit exports of the ticket store: incidents (CSV or JSON Lines) and every timeline event
(CSV), streamed from a server-side cursor so memory stays flat whatever the row count.

Each export holds one pooled connection while it streams (a named cursor lives in a
transaction); rows are fetched ``BATCH`` at a time and written out as they come.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from schemas.enums import Severity

Pool = AsyncConnectionPool[psycopg.AsyncConnection]

#: rows fetched from the server-side cursor, and written out, at a time
BATCH = 1000
#: the first characters that make a spreadsheet read a cell as a formula
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

INCIDENT_COLUMNS = (
    "number",
    "title",
    "service",
    "status",
    "severity",
    "priority",
    "impact",
    "urgency",
    "category",
    "source",
    "dedup_key",
    "alert_count",
    "commander",
    "escalation_level",
    "drill",
    "created_at",
    "acknowledged_at",
    "mitigated_at",
    "resolved_at",
    "closed_at",
    "time_to_acknowledge_seconds",
    "time_to_resolve_seconds",
    "resolution",
    "labels",
)
EVENT_COLUMNS = ("number", "seq", "at", "actor", "kind", "details")

_SELECT = {
    "incidents": """
SELECT number, title, service, status, severity, priority, impact, urgency, category, source,
       dedup_key, alert_count, commander, escalation_level, drill, created_at, acknowledged_at,
       mitigated_at, resolved_at, closed_at,
       EXTRACT(EPOCH FROM acknowledged_at - created_at) AS time_to_acknowledge_seconds,
       EXTRACT(EPOCH FROM resolved_at - created_at) AS time_to_resolve_seconds,
       resolution, labels
  FROM incidents i
 WHERE {filters}
 ORDER BY created_at, number_seq
""",
    "events": """
SELECT e.number, e.seq, e.at, e.actor, e.kind, e.details
  FROM incidents i JOIN incident_events e ON e.number = i.number
 WHERE {filters}
 ORDER BY i.created_at, i.number_seq, e.seq
""",
}
_COUNT = {
    "incidents": "SELECT count(*) FROM incidents i WHERE {filters}",
    "events": (
        "SELECT count(*) FROM incidents i JOIN incident_events e ON e.number = i.number"
        " WHERE {filters}"
    ),
}
_FILTERS = """
(%(since)s::timestamptz IS NULL OR i.created_at >= %(since)s::timestamptz)
AND (%(until)s::timestamptz IS NULL OR i.created_at < %(until)s::timestamptz)
AND (%(service)s::text IS NULL OR i.service = %(service)s::text)
AND (%(severity)s::text IS NULL OR i.severity = %(severity)s::text)
AND (%(include_drills)s::boolean OR NOT i.drill)
"""

Table = Literal["incidents", "events"]


class ExportFilters(BaseModel):
    """Incidents created in ``[since, until)``, of one service and severity; drills only
    when ``include_drills``. An events export covers the timelines of those incidents."""

    since: datetime | None = None
    until: datetime | None = None
    service: str | None = None
    severity: Severity | None = None
    include_drills: bool = False

    def params(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "service": self.service,
            "severity": self.severity.value if self.severity else None,
            "include_drills": self.include_drills,
        }


def _query(template: str) -> sql.SQL:
    return sql.SQL(template.replace("{filters}", _FILTERS))


async def count(pool: Pool, table: Table, filters: ExportFilters) -> int:
    """How many rows an export of ``table`` will hold (sent ahead as ``X-Export-Rows``)."""
    async with pool.connection() as conn:
        cur = await conn.execute(_query(_COUNT[table]), filters.params())
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def rows(pool: Pool, table: Table, filters: ExportFilters) -> AsyncIterator[Sequence[Any]]:
    """Every row of the export, in batches from a server-side (named) cursor."""
    async with pool.connection() as conn, conn.transaction():
        async with conn.cursor(name=f"export_{table}") as cur:
            cur.itersize = BATCH
            await cur.execute(_query(_SELECT[table]), filters.params())
            while batch := await cur.fetchmany(BATCH):
                for row in batch:
                    yield row


def _cell(value: Any) -> Any:
    """A CSV cell: instants in RFC 3339, JSON as JSON, and text that a spreadsheet would
    take for a formula prefixed with ``'`` (CSV injection)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    if isinstance(value, float):
        return f"{value:.3f}"
    return value


async def csv_chunks(pool: Pool, table: Table, filters: ExportFilters) -> AsyncIterator[str]:
    """The export as CSV: the header row first, then ``BATCH`` rows per chunk."""
    columns = INCIDENT_COLUMNS if table == "incidents" else EVENT_COLUMNS
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    pending = 0
    async for row in rows(pool, table, filters):
        writer.writerow([_cell(v) for v in row])
        pending += 1
        if pending >= BATCH:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue()


async def jsonl_chunks(pool: Pool, filters: ExportFilters) -> AsyncIterator[str]:
    """Incidents as JSON Lines: one object per line, ``BATCH`` lines per chunk."""
    lines: list[str] = []
    async for row in rows(pool, "incidents", filters):
        item = {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in zip(INCIDENT_COLUMNS, row, strict=True)
        }
        for key in ("time_to_acknowledge_seconds", "time_to_resolve_seconds"):
            if item[key] is not None:
                item[key] = float(item[key])
        lines.append(json.dumps(item, ensure_ascii=False) + "\n")
        if len(lines) >= BATCH:
            yield "".join(lines)
            lines = []
    yield "".join(lines)
