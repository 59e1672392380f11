"""The public status page, without I/O: what a component's status is, which incidents and
updates may be shown, and the shapes ``/status/summary.json`` answers with.

Everything shown publicly is built here from a few public facts: a service's
``display_name`` and ``public_title`` from the policy, an incident's severity, status and
times, and the text of updates posted with ``public: true``. The incident's own title,
description, labels, notes and responders are never read, so no status surface can show
them. ``summary.json`` follows Atlassian Statuspage's public ``summary.json`` (docs/status-page.md
lists the differences).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.enums import ComponentStatus, Severity, Status, StatusPhase
from schemas.lifecycle import OPEN_STATUSES
from schemas.policy import Policy, Service

#: how many days of uptime bars each component shows
HISTORY_DAYS = 90

#: the component status an open incident's severity implies (SEV4 leaves it operational)
SEVERITY_STATUS: dict[Severity, ComponentStatus] = {
    Severity.SEV1: ComponentStatus.MAJOR_OUTAGE,
    Severity.SEV2: ComponentStatus.PARTIAL_OUTAGE,
    Severity.SEV3: ComponentStatus.DEGRADED_PERFORMANCE,
    Severity.SEV4: ComponentStatus.OPERATIONAL,
}
#: worst first, for picking the worst of several
_RANK = {status: rank for rank, status in enumerate(ComponentStatus)}
#: Statuspage's impact and indicator levels
Indicator = Literal["none", "minor", "major", "critical"]
#: Statuspage's incident impact per severity
IMPACT: dict[Severity, Indicator] = {
    Severity.SEV1: "critical",
    Severity.SEV2: "major",
    Severity.SEV3: "minor",
    Severity.SEV4: "none",
}
#: the page's overall indicator and its words, by the worst component status
INDICATOR: dict[ComponentStatus, tuple[Indicator, str]] = {
    ComponentStatus.OPERATIONAL: ("none", "All Systems Operational"),
    ComponentStatus.DEGRADED_PERFORMANCE: ("minor", "Minor Service Outage"),
    ComponentStatus.PARTIAL_OUTAGE: ("major", "Partial System Outage"),
    ComponentStatus.MAJOR_OUTAGE: ("critical", "Major System Outage"),
}
#: the words the page shows for a component status
STATUS_WORDS: dict[ComponentStatus, str] = {
    ComponentStatus.OPERATIONAL: "Operational",
    ComponentStatus.DEGRADED_PERFORMANCE: "Degraded performance",
    ComponentStatus.PARTIAL_OUTAGE: "Partial outage",
    ComponentStatus.MAJOR_OUTAGE: "Major outage",
}
#: share of an outage's minutes that count as downtime in a component's uptime
_DOWNTIME_WEIGHT = {
    ComponentStatus.MAJOR_OUTAGE: 1.0,
    ComponentStatus.PARTIAL_OUTAGE: 0.3,
}


def worst(statuses: list[ComponentStatus]) -> ComponentStatus:
    return max(statuses, key=_RANK.__getitem__, default=ComponentStatus.OPERATIONAL)


def public_services(policy: Policy) -> list[Service]:
    """The components, in policy order."""
    return [s for s in policy.services if s.public]


def public_title(service: Service) -> str:
    """An incident's public title: the service's ``public_title``, never the alert's own."""
    return service.public_title or f"{service.display_name or service.name}: degraded performance"


# ---------------------------------------------------------------------------- input rows


class PublicUpdate(BaseModel):
    """A status update as PostgreSQL holds it; ``text`` only for public ones."""

    seq: int
    at: datetime
    public: bool
    phase: StatusPhase | None = None
    component_status: ComponentStatus | None = None
    text: str = ""


class IncidentFacts(BaseModel):
    """The few facts of an incident on a public service that the page may use."""

    number: str
    service: str
    severity: Severity
    status: Status
    created_at: datetime
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    updates: list[PublicUpdate] = Field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def public_updates(self) -> list[PublicUpdate]:
        return [u for u in self.updates if u.public]

    def component_status(self) -> ComponentStatus:
        """While open: the latest override an update set, else what the severity implies."""
        if not self.open:
            return ComponentStatus.OPERATIONAL
        overrides = [u.component_status for u in self.updates if u.component_status]
        return overrides[-1] if overrides else SEVERITY_STATUS[self.severity]

    def phase(self) -> StatusPhase:
        if not self.open:
            return StatusPhase.RESOLVED
        phases = [u.phase for u in self.public_updates if u.phase]
        return phases[-1] if phases else StatusPhase.INVESTIGATING

    def shown(self) -> bool:
        """On the page: while it moves its component off operational, or once a public
        update was posted for it."""
        return bool(self.public_updates) or (
            self.open and self.component_status() != ComponentStatus.OPERATIONAL
        )


# ---------------------------------------------------------------------------- the view


class DayBar(BaseModel):
    day: date
    status: ComponentStatus


class ComponentView(BaseModel):
    id: str
    name: str
    description: str
    status: ComponentStatus
    position: int
    bars: list[DayBar]
    uptime_percent: float


class IncidentView(BaseModel):
    id: str
    name: str
    component_id: str
    phase: StatusPhase
    impact: Indicator
    started_at: datetime
    updated_at: datetime
    monitoring_at: datetime | None
    resolved_at: datetime | None
    open: bool
    updates: list[PublicUpdate]


class StatusView(BaseModel):
    """Everything every status surface shows, built once per request."""

    name: str
    url: str
    generated_at: datetime
    updated_at: datetime
    status: ComponentStatus
    components: list[ComponentView]
    incidents: list[IncidentView]

    @property
    def open_incidents(self) -> list[IncidentView]:
        return [i for i in self.incidents if i.open]

    @property
    def past_incidents(self) -> list[IncidentView]:
        return [i for i in self.incidents if not i.open]


def _bars(incidents: list[IncidentFacts], now: datetime) -> tuple[list[DayBar], float]:
    """One bar per day (oldest first) with the worst status of the incidents open that
    day, and the uptime over those days."""
    today = now.astimezone(UTC).date()
    start = today - timedelta(days=HISTORY_DAYS - 1)
    bars: list[DayBar] = []
    for offset in range(HISTORY_DAYS):
        day = start + timedelta(days=offset)
        lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
        hi = lo + timedelta(days=1)
        statuses = [
            SEVERITY_STATUS[i.severity]
            for i in incidents
            if i.created_at < hi and (i.resolved_at or now) >= lo
        ]
        bars.append(DayBar(day=day, status=worst(statuses)))
    window_start = datetime(start.year, start.month, start.day, tzinfo=UTC)
    total = (now - window_start).total_seconds()
    down = 0.0
    for i in incidents:
        weight = _DOWNTIME_WEIGHT.get(SEVERITY_STATUS[i.severity], 0.0)
        begin = max(i.created_at, window_start)
        end = min(i.resolved_at or now, now)
        if weight and end > begin:
            down += weight * (end - begin).total_seconds()
    uptime = 100.0 if total <= 0 else max(0.0, 100.0 * (1 - min(down, total) / total))
    return bars, round(uptime, 2)


def build_view(
    policy: Policy, incidents: list[IncidentFacts], *, url: str, now: datetime
) -> StatusView:
    """The page from the policy's public services and the incidents PostgreSQL holds for
    them (incidents of other services are ignored, whatever the caller passed)."""
    services = {s.name: s for s in public_services(policy)}
    mine = [i for i in incidents if i.service in services]
    components = []
    for position, (name, service) in enumerate(services.items(), start=1):
        of_service = [i for i in mine if i.service == name]
        bars, uptime = _bars(of_service, now)
        components.append(
            ComponentView(
                id=name,
                name=service.display_name or name,
                description="",
                status=worst([i.component_status() for i in of_service]),
                position=position,
                bars=bars,
                uptime_percent=uptime,
            )
        )
    views = []
    for i in sorted(mine, key=lambda i: i.created_at, reverse=True):
        if not i.shown():
            continue
        updates = i.public_updates
        monitoring = [u.at for u in updates if u.phase == StatusPhase.MONITORING]
        stamps = [i.created_at, *(u.at for u in updates)]
        if i.resolved_at:
            stamps.append(i.resolved_at)
        views.append(
            IncidentView(
                id=i.number,
                name=public_title(services[i.service]),
                component_id=i.service,
                phase=i.phase(),
                impact=IMPACT[i.severity],
                started_at=i.created_at,
                updated_at=max(stamps),
                monitoring_at=monitoring[0] if monitoring else None,
                resolved_at=None if i.open else i.resolved_at,
                open=i.open,
                updates=list(reversed(updates)),
            )
        )
    stamps = [v.updated_at for v in views]
    return StatusView(
        name=policy.status_page.name,
        url=url,
        generated_at=now,
        updated_at=max(stamps, default=now),
        status=worst([c.status for c in components]),
        components=components,
        incidents=views,
    )


# ---------------------------------------------------------------------------- summary.json


class _Summary(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SummaryPage(_Summary):
    id: str
    name: str
    url: str
    time_zone: Literal["Etc/UTC"] = "Etc/UTC"
    updated_at: datetime


class SummaryComponent(_Summary):
    id: str
    name: str
    status: ComponentStatus
    description: str | None
    position: int
    showcase: bool = True
    only_show_if_degraded: bool = False
    group: bool = False
    group_id: None = None
    page_id: str
    created_at: None = None
    updated_at: datetime
    start_date: None = None


class SummaryIncidentUpdate(_Summary):
    id: str
    incident_id: str
    status: StatusPhase
    body: str
    created_at: datetime
    updated_at: datetime
    display_at: datetime
    affected_components: None = None


class SummaryAffected(_Summary):
    id: str
    name: str
    status: ComponentStatus


class SummaryIncident(_Summary):
    id: str
    name: str
    status: StatusPhase
    impact: Indicator
    shortlink: str
    page_id: str
    created_at: datetime
    started_at: datetime
    updated_at: datetime
    monitoring_at: datetime | None
    resolved_at: datetime | None
    incident_updates: list[SummaryIncidentUpdate]
    components: list[SummaryAffected]


class SummaryStatus(_Summary):
    indicator: Indicator
    description: str


class Summary(_Summary):
    """``GET /status/summary.json``; its JSON schema is docs/status-summary.schema.json."""

    page: SummaryPage
    components: list[SummaryComponent]
    incidents: list[SummaryIncident]
    scheduled_maintenances: list[None] = Field(default_factory=list, max_length=0)
    status: SummaryStatus


PAGE_ID = "incidentflow"


def summary(view: StatusView) -> Summary:
    """Statuspage's ``summary.json`` shape: components and the open public incidents."""
    components = {c.id: c for c in view.components}
    indicator, words = INDICATOR[view.status]
    return Summary(
        page=SummaryPage(id=PAGE_ID, name=view.name, url=view.url, updated_at=view.updated_at),
        components=[
            SummaryComponent(
                id=c.id,
                name=c.name,
                status=c.status,
                description=c.description or None,
                position=c.position,
                page_id=PAGE_ID,
                updated_at=view.updated_at,
            )
            for c in view.components
        ],
        incidents=[
            SummaryIncident(
                id=i.id,
                name=i.name,
                status=i.phase,
                impact=i.impact,
                shortlink=f"{view.url}#{i.id}",
                page_id=PAGE_ID,
                created_at=i.started_at,
                started_at=i.started_at,
                updated_at=i.updated_at,
                monitoring_at=i.monitoring_at,
                resolved_at=i.resolved_at,
                incident_updates=[
                    SummaryIncidentUpdate(
                        id=f"{i.id}-{u.seq}",
                        incident_id=i.id,
                        status=u.phase or StatusPhase.INVESTIGATING,
                        body=u.text,
                        created_at=u.at,
                        updated_at=u.at,
                        display_at=u.at,
                    )
                    for u in i.updates
                ],
                components=[
                    SummaryAffected(
                        id=i.component_id,
                        name=components[i.component_id].name,
                        status=components[i.component_id].status,
                    )
                ],
            )
            for i in view.open_incidents
        ],
        status=SummaryStatus(indicator=indicator, description=words),
    )
