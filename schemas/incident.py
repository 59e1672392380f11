"""The incident as every surface sees it: alert input, timeline events, the snapshot."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.actors import MONITORING, Actor
from schemas.calendars import ALWAYS_CALENDAR, Calendar
from schemas.classification import priority_for, severity_for
from schemas.enums import (
    Category,
    Clock,
    EventKind,
    Impact,
    LinkKind,
    Priority,
    Role,
    Severity,
    Status,
    Urgency,
)
from schemas.policy import (
    EscalationPolicy,
    Policy,
    ReviewPolicy,
    Service,
    SeverityPolicy,
    SlackSettings,
    StakeholderRule,
)


class Link(BaseModel):
    href: str
    text: str = ""


class IncidentLink(BaseModel):
    """A relation to another incident (``schemas.enums.LinkKind``), as this incident sees it."""

    kind: LinkKind
    number: str


class Alert(BaseModel):
    """One alert from a monitoring system (or a human trigger), already classified.

    ``alert_id`` is unique per delivery; it tells the starting alert from repeats when a
    trigger arrives by update-with-start.
    """

    model_config = ConfigDict(extra="forbid")

    alert_id: str = ""
    service: str = Field(min_length=1)
    title: str = Field(min_length=1, max_length=1024)
    description: str = Field(default="", max_length=65536)
    dedup_key: str | None = Field(default=None, max_length=255)
    source: str = "api"
    severity: Severity | None = None
    impact: Impact = Impact.MEDIUM
    urgency: Urgency = Urgency.MEDIUM
    category: Category = Category.OTHER
    labels: dict[str, str] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)
    links: list[Link] = Field(default_factory=list)
    actor: Actor = MONITORING
    occurred_at: datetime | None = None
    #: a game-day alert (docs/drills.md): the incident is marked a drill everywhere, pages go
    #: to the policy's drill targets, reports and similar incidents leave it out
    drill: bool = False


class TimelineEvent(BaseModel):
    """One entry of an incident's timeline; ``seq`` is the idempotency key downstream."""

    seq: int
    at: datetime
    #: the actor's name as written (``schemas.actors``: a person's name or a reserved name)
    actor: str
    kind: EventKind
    details: dict[str, Any] = Field(default_factory=dict)


class SlackMessage(BaseModel):
    """A Slack message the bot posted for an incident (a page), kept current by
    ``chat.update``: the channel Slack answered with (a DM's ``D…`` ID) and the ts."""

    channel: str
    ts: str


class SlackChannel(BaseModel):
    """The incident's own Slack channel (``#inc-123-short-title``)."""

    id: str
    name: str
    archived: bool = False


class Deadlines(BaseModel):
    """Absolute instants of the SLA clocks; ``None`` once a clock is met or not running."""

    ack: datetime | None = None
    mitigate: datetime | None = None
    resolve: datetime | None = None
    update: datetime | None = None
    next_escalation: datetime | None = None
    #: when a pause with ``until`` resumes by itself
    resume: datetime | None = None

    def get(self, clock: Clock) -> datetime | None:
        value: datetime | None = getattr(self, clock.value)
        return value


class Breach(BaseModel):
    clock: Clock
    deadline: datetime
    at: datetime
    late_by_seconds: float


class EscalationState(BaseModel):
    policy: EscalationPolicy
    #: 1-based level last paged; 0 before the first page
    level: int = 0
    #: how many times the policy has been looped (0 on the first pass)
    loop: int = 0
    exhausted: bool = False
    #: escalation runs only while this is true (stops on acknowledge)
    active: bool = True
    #: ``level`` waits for its calendar's working hours (``levels[].when``) before paging;
    #: ``Deadlines.next_escalation`` is when they begin
    held: bool = False
    #: highest level reached, for reports
    max_level: int = 0


class IncidentPolicy(BaseModel):
    """The slice of the policy an incident runs on, snapshotted when it is triggered."""

    service: str
    escalation: EscalationPolicy
    severities: dict[Severity, SeverityPolicy]
    auto_resolve: bool = True
    reopen_window: timedelta = timedelta(hours=1)
    base_url: str = "http://localhost:8000"
    #: the policy's review section (meeting time, zone, holidays, reminders, owner);
    #: ``None`` means ReviewPolicy's defaults
    review: ReviewPolicy | None = None
    #: the policy's calendars by name (``SeverityPolicy.calendar``, ``levels[].when``);
    #: a name not here counts 24x7
    calendars: dict[str, Calendar] = Field(default_factory=dict)
    #: the policy's Slack app section; ``None``: no interactive messages, no channel
    slack: SlackSettings | None = None
    #: the policy's stakeholder rules covering this service (told, not paged)
    stakeholders: list[StakeholderRule] = Field(default_factory=list)

    def calendar(self, name: str | None) -> Calendar:
        return self.calendars.get(name or "", ALWAYS_CALENDAR)

    @classmethod
    def of(cls, policy: Policy, service: Service) -> IncidentPolicy:
        """The slice of ``policy`` a new incident of ``service`` runs on (the live trigger
        and the policy simulator both take it from here)."""
        escalation = policy.escalation_policy(service.escalation_policy)
        assert escalation is not None  # guaranteed by Policy's reference check
        return cls(
            service=service.name,
            escalation=escalation,
            severities=policy.severities_for(service),
            auto_resolve=service.auto_resolve,
            reopen_window=service.reopen_window,
            base_url=policy.base_url,
            review=policy.review_policy(),
            calendars={c.name: c for c in policy.calendars},
            # the Slack app runs only where its bot token is set (docs/slack.md)
            slack=policy.slack if policy.slack and policy.slack.bot_token() else None,
            stakeholders=policy.stakeholders_of(service.name),
        )


class Pause(BaseModel):
    """A pause in force: the clocks it stopped and the business time each had left."""

    reason: str
    actor: str
    since: datetime
    until: datetime | None = None
    #: business seconds each stopped clock had left when paused
    left: dict[Clock, float] = Field(default_factory=dict)


class PausedSpan(BaseModel):
    """A pause that ended: this wall-clock stretch did not count on ``clocks``."""

    start: datetime
    end: datetime
    reason: str
    clocks: list[Clock] = Field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


class AlertSignal(BaseModel):
    """An alert sent by signal-with-start (the integrations' fast path), with the policy
    snapshot a new incident for its key starts with if this one is closing."""

    alert: Alert
    policy: IncidentPolicy


class IncidentStart(BaseModel):
    """Input of ``IncidentWorkflow.run``; also what continue-as-new carries (``carried``)."""

    alert: Alert
    policy: IncidentPolicy
    carried: IncidentSnapshot | None = None
    #: ids of the latest alerts already counted, so a trigger the server asks the client to
    #: resend across continue-as-new is not counted twice
    alert_ids: list[str] = Field(default_factory=list)
    #: the first alert signalled to the previous run after it stopped counting (it was
    #: closing, handing over or continuing as new): this run counts it (a repeat or a reopen)
    queued: AlertSignal | None = None
    #: how many more arrived after it: repeats, counted as a number so that a storm during a
    #: long drain cannot outgrow the payload limit (their ids travel in ``alert_ids``)
    queued_repeats: int = Field(default=0, ge=0)
    #: ids of the responder Updates the previous runs applied lately: one resent with its
    #: id (``Idempotency-Key``) is recognised across continue-as-new instead of refused
    action_ids: list[str] = Field(default_factory=list)


class IncidentSnapshot(BaseModel):
    """Everything known about one incident; the ``state`` query returns this."""

    number: str = ""
    workflow_id: str = ""
    run_id: str = ""
    title: str
    description: str = ""
    service: str
    status: Status = Status.TRIGGERED
    severity: Severity
    priority: Priority
    impact: Impact
    urgency: Urgency
    category: Category
    labels: dict[str, str] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)
    links: list[Link] = Field(default_factory=list)
    dedup_key: str | None = None
    source: str = "api"
    #: opened by a drill alert (``Alert.drill``)
    drill: bool = False
    alert_count: int = 1
    alert_cleared: bool = False
    created_at: datetime
    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    reopened_at: datetime | None = None
    reopen_count: int = 0
    last_status_update_at: datetime | None = None
    responders: dict[Role, str] = Field(default_factory=dict)
    #: everyone who acted on the incident, in order of first action (review attendees)
    participants: list[str] = Field(default_factory=list)
    deadlines: Deadlines = Field(default_factory=Deadlines)
    breaches: list[Breach] = Field(default_factory=list)
    #: the pause in force (``paused: <reason>``), and the pauses that ended
    paused: Pause | None = None
    pauses: list[PausedSpan] = Field(default_factory=list)
    #: the calendar of each clock that does not count 24x7 (countdowns in business time)
    clock_calendars: dict[Clock, Calendar] = Field(default_factory=dict)
    escalation: EscalationState
    merged_into: str | None = None
    #: relations to other incidents (the other one keeps the inverse)
    incident_links: list[IncidentLink] = Field(default_factory=list)
    close_reason: str | None = None
    review_workflow_id: str | None = None
    timeline: list[TimelineEvent] = Field(default_factory=list)
    last_seq: int = 0
    #: the bot's pages of this incident, updated in place on every change (docs/slack.md)
    slack_messages: list[SlackMessage] = Field(default_factory=list)
    slack_channel: SlackChannel | None = None

    def paused_seconds(self, now: datetime | None = None) -> float:
        """Wall-clock time spent paused (the pause in force counted up to ``now``)."""
        total = sum(p.seconds for p in self.pauses)
        if self.paused is not None and now is not None:
            total += max(0.0, (now - self.paused.since).total_seconds())
        return total

    @classmethod
    def for_alert(
        cls, alert: Alert, escalation: EscalationPolicy, now: datetime
    ) -> IncidentSnapshot:
        """The snapshot of a new incident for ``alert``, before its trigger."""
        priority = priority_for(alert.impact, alert.urgency)
        return cls(
            title=alert.title,
            description=alert.description,
            service=alert.service,
            severity=alert.severity or severity_for(priority),
            priority=priority,
            impact=alert.impact,
            urgency=alert.urgency,
            category=alert.category,
            labels=alert.labels,
            details=alert.details,
            links=alert.links,
            dedup_key=alert.dedup_key,
            source=alert.source,
            drill=alert.drill,
            created_at=now,
            escalation=EscalationState(policy=escalation),
        )

    def summary(self) -> IncidentSnapshot:
        """The snapshot without its timeline, for ticket rows and notifications."""
        return self.model_copy(update={"timeline": []})


class IncidentRef(BaseModel):
    """What a trigger returns."""

    number: str
    workflow_id: str
    run_id: str = ""
    created: bool
    reopened: bool = False
    alert_count: int = 1
    status: Status = Status.TRIGGERED


IncidentStart.model_rebuild()
