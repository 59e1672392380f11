"""Links between incidents as the ticket store keeps them (``incident_links``, both sides a
row): the SQL and the model the incident page, the API and the postmortem share."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from schemas.enums import LinkKind, Severity, Status


class LinkedIncident(BaseModel):
    """One link of an incident, with the other incident's title and status (``None`` while
    its ticket row is not written)."""

    kind: LinkKind
    number: str
    title: str | None = None
    service: str | None = None
    status: Status | None = None
    severity: Severity | None = None
    linked_at: datetime


#: parameter: the incident's number
LINKS_SQL = """
SELECT l.kind, l.other AS number, l.linked_at, i.title, i.service, i.status, i.severity
  FROM incident_links l LEFT JOIN incidents i ON i.number = l.other
 WHERE l.number = %s
 ORDER BY l.kind, l.linked_at, l.other
"""
