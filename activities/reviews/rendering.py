"""The postmortem draft: one jinja2 markdown template (``templates/postmortem.md.j2``) over the
review, the incident and its full timeline.

Rendered again whenever the review changes (scheduled, rescheduled, overdue, completed,
waived), so the stored document always reflects the latest state; a directory given in
settings (``INCIDENTFLOW_TEMPLATES``) is searched first, so the template can be overridden
by name.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel

from schemas.durations import format_duration
from schemas.enums import EventKind
from schemas.incident import IncidentSnapshot, TimelineEvent
from schemas.incident_links import LinkedIncident
from schemas.review import ReviewState
from schemas.review_schedule import zone_named

TEMPLATES = Path(__file__).parent / "templates"
POSTMORTEM = "postmortem.md.j2"
NOTE_KINDS = (EventKind.NOTE_ADDED, EventKind.STATUS_UPDATE_POSTED)
_DETAIL_LIMIT = 300


class IncidentMetrics(BaseModel):
    """Response times, measured from the incident's creation.

    From the timeline, so a reopened incident counts its first acknowledgement and
    mitigation and its last resolution; the snapshot's fields (reset by a reopen) are the
    fallback when the timeline lacks the event.
    """

    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    tta: timedelta | None = None
    ttm: timedelta | None = None
    ttr: timedelta | None = None


def incident_metrics(
    incident: IncidentSnapshot, timeline: Sequence[TimelineEvent]
) -> IncidentMetrics:
    def first(kind: EventKind) -> datetime | None:
        return next((e.at for e in timeline if e.kind == kind), None)

    def last(kind: EventKind) -> datetime | None:
        return next((e.at for e in reversed(timeline) if e.kind == kind), None)

    acknowledged = first(EventKind.ACKNOWLEDGED) or incident.acknowledged_at
    mitigated = first(EventKind.MITIGATED) or first(EventKind.RESOLVED) or incident.mitigated_at
    resolved = last(EventKind.RESOLVED) or incident.resolved_at
    start = incident.created_at

    def since(at: datetime | None) -> timedelta | None:
        return None if at is None else at - start

    return IncidentMetrics(
        acknowledged_at=acknowledged,
        mitigated_at=mitigated,
        resolved_at=resolved,
        tta=since(acknowledged),
        ttm=since(mitigated),
        ttr=since(resolved),
    )


# -- filters ------------------------------------------------------------------------------


def _utc(value: datetime | str | None) -> str:
    """``2026-03-02 14:03:05 UTC``; empty for ``None``."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def local_time(value: datetime | None, zone: str) -> str:
    """``Tuesday 2026-03-03 14:00 CET`` in ``zone``."""
    if value is None:
        return ""
    tz = zone_named(zone)
    local = value.astimezone(tz) if tz is not None else value.astimezone(UTC)
    return local.strftime("%A %Y-%m-%d %H:%M %Z")


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "—"
    if value < timedelta(0):
        return "-" + format_duration(-value)
    return format_duration(value)


def _inert(text: str) -> str:
    """HTML-escaped: markdown renderers pass inline HTML through, so user text must not
    carry live markup (entities render as the characters they stand for)."""
    return html.escape(text, quote=False)


def _oneline(value: Any) -> str:
    """Whitespace (newlines included) collapsed and HTML escaped: a value cannot break a
    list item or smuggle markup."""
    return _inert(" ".join(str(value).split()))


def _href(value: Any) -> str:
    """Only web and mail links become links; ``javascript:`` and the like are dropped."""
    text = "".join(str(value).split())
    if not re.match(r"^(https?://|mailto:)", text, re.IGNORECASE):
        return "#"
    return _inert(text).replace("(", "%28").replace(")", "%29")


def _cell(value: Any) -> str:
    """One line, pipes escaped: safe inside a markdown table cell."""
    return _oneline(value).replace("|", "\\|")


def _value(value: Any) -> str:
    if isinstance(value, list):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):
        text = json.dumps(value, sort_keys=True, default=str)
    else:
        text = str(value)
    text = _oneline(text)
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 1] + "…"


def _details(details: dict[str, Any]) -> str:
    """``key: value; key: value`` of the non-empty details, for one timeline line."""
    parts = [
        f"{key}: {_value(value)}"
        for key, value in details.items()
        if value not in (None, "", [], {}) and value is not False
    ]
    return "; ".join(parts)


def _quote(value: Any) -> str:
    """Multi-line text as a markdown blockquote."""
    lines = _inert(str(value)).strip().splitlines() or [""]
    return "\n".join(f"> {line}".rstrip() for line in lines)


class PostmortemRenderer:
    def __init__(self, override_dir: Path | None = None) -> None:
        loaders = [FileSystemLoader(str(TEMPLATES))]
        if override_dir is not None:
            loaders.insert(0, FileSystemLoader(str(override_dir)))
        self.env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=False,  # markdown, not HTML; values are made single-line instead
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters.update(
            utc=_utc,
            local=local_time,
            duration=_duration,
            oneline=_oneline,
            cell=_cell,
            details=_details,
            quote=_quote,
            href=_href,
        )

    def render(
        self,
        review: ReviewState,
        timeline: Sequence[TimelineEvent],
        links: Sequence[LinkedIncident] = (),
    ) -> str:
        """The postmortem; ``links`` are the incident's links from the ticket store."""
        incident = review.incident
        events = sorted(timeline, key=lambda e: e.seq)
        esc = incident.escalation
        context = {
            "review": review,
            "incident": incident,
            "timeline": events,
            "metrics": incident_metrics(incident, events),
            "notes": [e for e in events if e.kind in NOTE_KINDS],
            "escalation": esc,
            "levels_total": len(esc.policy.levels),
            "completion": review.completion,
            "responders": {role.value: user for role, user in incident.responders.items()},
            "links": list(links),
        }
        text = self.env.get_template(POSTMORTEM).render(context)
        return text.rstrip() + "\n"
