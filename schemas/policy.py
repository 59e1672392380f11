"""The policy: who is paged, how fast, through what. Loaded from YAML by ``schemas.policy_file``.

Every model forbids unknown fields so a typo in the policy file is an error, not a
silently ignored setting. Cross references (a service naming an escalation policy, a
level naming a user) are checked once, in :class:`Policy`, and every broken one is listed.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, time, timedelta
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from schemas.actors import RESERVED_NAMES
from schemas.calendars import ALWAYS, Calendar, ZoneName
from schemas.durations import Duration
from schemas.enums import (
    Category,
    ChannelKind,
    Clock,
    EventKind,
    Impact,
    Scope,
    Severity,
    TargetKind,
    Urgency,
)
from schemas.policy_secrets import Secret


class PolicyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class User(PolicyModel):
    name: str = Field(min_length=1)
    email: str | None = None
    slack: Secret | None = Field(default=None, description="Slack incoming-webhook URL for DMs")
    webhook: Secret | None = Field(default=None, description="personal webhook URL")
    full_name: str | None = None
    #: the user's Slack member ID: the bot pages them by DM, and their button presses and
    #: ``/incident`` commands act as this user (docs/slack.md)
    slack_id: str | None = Field(default=None, pattern=r"^[UW][A-Z0-9]{2,}$")


class Channel(PolicyModel):
    name: str = Field(min_length=1)
    kind: ChannelKind
    #: email address for email; webhook URL for slack/webhook; Apprise URL for apprise
    target: Secret = ""
    #: HMAC secret for signed webhooks (kind webhook)
    secret: Secret | None = None


class Override(PolicyModel):
    user: str
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> Override:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("override start and end need a UTC offset (e.g. 2026-01-01T09:00Z)")
        if self.end <= self.start:
            raise ValueError("override end must be after its start")
        return self


class Schedule(PolicyModel):
    """A rotation: users take turns of ``shift`` length, handing off at ``handoff`` in ``zone``."""

    name: str = Field(min_length=1)
    users: list[str] = Field(min_length=1)
    shift: Duration = timedelta(days=7)
    handoff: time = time(9, 0)
    zone: ZoneName = "UTC"
    #: the day the first user in ``users`` starts (rotation epoch), local to ``zone``
    start: datetime = datetime(2024, 1, 1)
    overrides: list[Override] = Field(default_factory=list)

    @field_validator("shift")
    @classmethod
    def _positive_shift(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("shift must be positive")
        return value


class EscalationTarget(PolicyModel):
    """Who a level pages. Written ``user:alice``, ``schedule:primary`` or ``channel:ops``."""

    kind: TargetKind
    name: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            kind, sep, name = value.partition(":")
            if not sep:
                raise ValueError(f"target {value!r} must be written kind:name, e.g. user:alice")
            return {"kind": kind.strip(), "name": name.strip()}
        return value

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.name}"


class OutOfHours(PolicyModel):
    """What a level limited to a calendar does outside its working hours: page ``targets``
    instead for the listed ``severities`` (all when empty); any other severity is held until
    the calendar's next working hours."""

    targets: list[EscalationTarget] = Field(default_factory=list)
    severities: list[Severity] = Field(default_factory=list)

    def pages(self, severity: Severity) -> bool:
        return bool(self.targets) and (not self.severities or severity in self.severities)


#: a plain email address (one ``@``, a dotted domain, nothing that could smuggle a second one)
EMAIL_PATTERN = r"^[^@\s<>,;:\"()\[\]]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"


class EscalationLevel(PolicyModel):
    targets: list[EscalationTarget] = Field(min_length=1)
    #: time without acknowledgement before the next level is paged
    delay: Duration = timedelta(minutes=15)
    #: page ``targets`` only in this calendar's working hours (``out_of_hours`` otherwise)
    when: str | None = None
    out_of_hours: OutOfHours | None = None


class EscalationPolicy(PolicyModel):
    name: str = Field(min_length=1)
    levels: list[EscalationLevel] = Field(min_length=1)
    #: how many times to loop over all levels again after the last one
    repeat: int = Field(default=0, ge=0, le=10)


def _pausable(clocks: list[Clock]) -> list[Clock]:
    if Clock.ACK in clocks:
        raise ValueError("the ack clock never pauses: someone must answer the page")
    return list(dict.fromkeys(clocks))


#: the clocks a pause stops unless a severity says otherwise (never ack: someone must answer)
DEFAULT_PAUSE_CLOCKS: tuple[Clock, ...] = (Clock.MITIGATE, Clock.RESOLVE)


class SeverityPolicy(PolicyModel):
    ack_within: Duration
    mitigate_within: Duration
    resolve_within: Duration
    update_every: Duration | None = None
    #: the calendar the clocks count in: one name for every clock, or one per clock
    #: (``{ack: 24x7, resolve: office}``; a clock not named counts 24x7)
    calendar: str | dict[Clock, str] = ALWAYS
    #: the clocks a pause stops (ack never pauses)
    pause_clocks: list[Clock] = Field(default_factory=lambda: list(DEFAULT_PAUSE_CLOCKS))
    review_required: bool = False
    #: business days after resolution
    review_after: int = Field(default=5, ge=0, le=60)
    #: paged when a mitigate/resolve clock is breached
    on_breach: list[EscalationTarget] = Field(default_factory=list)

    @field_validator("pause_clocks")
    @classmethod
    def _ack_never_pauses(cls, value: list[Clock]) -> list[Clock]:
        return _pausable(value)

    def calendar_for(self, clock: Clock) -> str:
        """The name of the calendar ``clock`` counts in."""
        if isinstance(self.calendar, str):
            return self.calendar
        return self.calendar.get(clock, ALWAYS)


class SlaOverride(PolicyModel):
    """A service's own targets for one severity (``services[].sla.SEV3``): the fields set
    here replace the severity's."""

    ack_within: Duration | None = None
    mitigate_within: Duration | None = None
    resolve_within: Duration | None = None
    update_every: Duration | None = None
    calendar: str | dict[Clock, str] | None = None
    pause_clocks: list[Clock] | None = None

    @field_validator("pause_clocks")
    @classmethod
    def _ack_never_pauses(cls, value: list[Clock] | None) -> list[Clock] | None:
        return None if value is None else _pausable(value)

    def applied_to(self, base: SeverityPolicy) -> SeverityPolicy:
        """``base`` with this override's fields (validated as a whole again)."""
        return SeverityPolicy.model_validate(
            {**base.model_dump(), **self.model_dump(exclude_none=True)}
        )


class Service(PolicyModel):
    name: str = Field(min_length=1)
    #: shown on the public status page as a component (needs ``display_name``)
    public: bool = False
    #: the component's public name; the internal name never appears on the status page
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    #: the public title of this service's incidents (never the alert's own title);
    #: default "<display name>: degraded performance"
    public_title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str = ""
    escalation_policy: str
    integration_keys: list[Secret] = Field(default_factory=list)
    #: an alert clear resolves the incident
    auto_resolve: bool = True
    #: a trigger inside this window after resolution reopens the incident
    reopen_window: Duration = timedelta(hours=1)
    #: when set, the integration endpoints of this service accept only requests signed
    #: with it (X-Incidentflow-Timestamp / X-Incidentflow-Signature, docs/webhooks.md)
    inbound_secret: Secret | None = None
    #: this service's own SLA targets, per severity, over the policy's ``severities``
    sla: dict[Severity, SlaOverride] = Field(default_factory=dict)
    #: requests/min each of this service's integration keys may send (0 = unlimited);
    #: unset = ``INCIDENTFLOW_RATE_LIMIT``
    rate_limit: int | None = Field(default=None, ge=0)


#: the events stakeholders can be told about (``stakeholders[].events``)
STAKEHOLDER_EVENTS: tuple[EventKind, ...] = (
    EventKind.TRIGGERED,
    EventKind.SEVERITY_CHANGED,
    EventKind.MITIGATED,
    EventKind.RESOLVED,
    EventKind.REOPENED,
    EventKind.STATUS_UPDATE_POSTED,
)
#: what a stakeholder rule tells when it names no events
DEFAULT_STAKEHOLDER_EVENTS: tuple[EventKind, ...] = (
    EventKind.TRIGGERED,
    EventKind.MITIGATED,
    EventKind.RESOLVED,
    EventKind.STATUS_UPDATE_POSTED,
)


class StakeholderRule(PolicyModel):
    """People who are told, not paged: ``targets`` hear ``events`` of incidents on
    ``services`` (empty: every service) at ``severities`` (empty: every severity)."""

    name: str = Field(min_length=1)
    services: list[str] = Field(default_factory=list)
    severities: list[Severity] = Field(default_factory=list)
    events: list[EventKind] = Field(default_factory=lambda: list(DEFAULT_STAKEHOLDER_EVENTS))
    targets: list[EscalationTarget] = Field(min_length=1)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[EventKind]) -> list[EventKind]:
        wrong = [e.value for e in value if e not in STAKEHOLDER_EVENTS]
        if wrong:
            allowed = ", ".join(e.value for e in STAKEHOLDER_EVENTS)
            raise ValueError(f"stakeholders are not told about {', '.join(wrong)} ({allowed})")
        return value

    def covers(self, service: str) -> bool:
        return not self.services or service in self.services

    def tells(self, event: EventKind, severity: Severity) -> bool:
        return event in self.events and (not self.severities or severity in self.severities)


class StatusPage(PolicyModel):
    """The public status page (``/status``): its name; components are the services marked
    ``public: true``."""

    name: str = Field(default="Status", min_length=1, max_length=200)


class ClassificationRule(PolicyModel):
    """Labels -> classification. ``match`` values are regular expressions, fully matched."""

    match: dict[str, str] = Field(min_length=1)
    service: str | None = None
    category: Category | None = None
    impact: Impact | None = None
    urgency: Urgency | None = None
    severity: Severity | None = None


class Heartbeat(PolicyModel):
    """A dead man's switch (docs/heartbeats.md): something that pings
    ``POST /api/v1/heartbeats/{name}`` at least every ``interval``; when ``interval + grace``
    pass without a ping, an incident opens on ``service``, and the next ping resolves it."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    service: str
    interval: Duration
    #: extra time after ``interval`` before the heartbeat counts as missed
    grace: Duration = timedelta(0)
    #: the incident's severity; unset: derived from impact and urgency like any alert
    severity: Severity | None = None
    #: the incident's title; unset: "Heartbeat <name> missed"
    title: str = Field(default="", max_length=1024)
    description: str = ""

    @field_validator("interval")
    @classmethod
    def _at_least_a_second(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("interval must be at least 1s")
        return value

    @field_validator("grace")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("grace must not be negative")
        return value

    @property
    def deadline(self) -> timedelta:
        """How long after a ping the next one must arrive."""
        return self.interval + self.grace

    @property
    def incident_title(self) -> str:
        return self.title or f"Heartbeat {self.name} missed"


class ApiToken(PolicyModel):
    name: str = Field(min_length=1)
    user: str
    sha256: Secret = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[Scope] = Field(min_length=1)
    #: requests/min this token may send (0 = unlimited); unset = ``INCIDENTFLOW_RATE_LIMIT``
    rate_limit: int | None = Field(default=None, ge=0)


class ReviewPolicy(PolicyModel):
    meeting_time: time = time(14, 0)
    zone: str = "UTC"
    duration: Duration = timedelta(hours=1)
    holidays: list[str] = Field(default_factory=list, description="ISO dates skipped")
    #: a calendar (``calendars:``) whose holidays the review skips too: one list of holidays
    #: for the office's SLA clocks and its review meetings
    calendar: str | None = None
    facilitator_fallback: str | None = None
    owner: str | None = None
    reminders: list[Duration] = Field(
        default_factory=lambda: [timedelta(hours=24), timedelta(hours=1)]
    )
    overdue_after_business_days: int = 2


class SlackSettings(PolicyModel):
    """The Slack app (docs/slack.md): interactive pages, ``/incident``, incident channels.

    Secrets never go in the file: it names the environment variables that hold them. Without
    a bot token in the named variable, Slack pages go through incoming webhooks as before.
    """

    #: environment variable holding the bot token (``xoxb-…``)
    bot_token_env: str = Field(default="SLACK_BOT_TOKEN", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: environment variable holding the app's signing secret (inbound requests)
    signing_secret_env: str = Field(
        default="SLACK_SIGNING_SECRET", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"
    )
    #: channel ID (or name) where the bot posts every new incident's page
    default_channel: str | None = None
    #: Slack Web API root; tests point it at a loopback receiver
    api_url: str = "https://slack.com/api/"
    #: severities that get their own channel (``#inc-123-short-title``)
    incident_channels: list[Severity] = Field(
        default_factory=lambda: [Severity.SEV1, Severity.SEV2]
    )
    #: archive an incident's channel once the incident is closed
    archive_after_close: bool = True

    def bot_token(self) -> str | None:
        """The bot token, from the environment variable this section names (if set)."""
        return os.environ.get(self.bot_token_env) or None

    def signing_secret(self) -> str | None:
        """The signing secret, from the environment variable this section names (if set)."""
        return os.environ.get(self.signing_secret_env) or None


class DrillPolicy(PolicyModel):
    """Where a drill's pages go (docs/drills.md): ``console`` (the default) logs each one as
    the console channel does, so nobody is woken by a game day; ``real`` pages the
    escalation targets as for a real incident (subjects still say DRILL)."""

    page: Literal["console", "real"] = "console"


class Policy(PolicyModel):
    base_url: str = "http://localhost:8000"
    users: list[User] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)
    calendars: list[Calendar] = Field(default_factory=list)
    escalation_policies: list[EscalationPolicy] = Field(default_factory=list)
    severities: dict[Severity, SeverityPolicy]
    services: list[Service] = Field(min_length=1)
    classification: list[ClassificationRule] = Field(default_factory=list)
    tokens: list[ApiToken] = Field(default_factory=list)
    review: ReviewPolicy = ReviewPolicy()
    heartbeats: list[Heartbeat] = Field(default_factory=list)
    slack: SlackSettings | None = None
    stakeholders: list[StakeholderRule] = Field(default_factory=list)
    status_page: StatusPage = StatusPage()
    drills: DrillPolicy = DrillPolicy()

    @model_validator(mode="after")
    def _references(self) -> Policy:
        errors: list[str] = []
        sections = (
            "users",
            "channels",
            "schedules",
            "calendars",
            "escalation_policies",
            "services",
        )
        for section in (*sections, "heartbeats", "stakeholders"):
            seen: set[str] = set()
            for i, item in enumerate(getattr(self, section)):
                if item.name in seen:
                    errors.append(f"{section}.{i}.name: duplicate name {item.name!r}")
                seen.add(item.name)
        for i, named in enumerate(self.users):
            if named.name in RESERVED_NAMES:
                errors.append(
                    f"users.{i}.name: {named.name!r} is reserved for an integration or incidentflow"
                )
        users = {u.name for u in self.users}
        known = {
            TargetKind.USER: users,
            TargetKind.SCHEDULE: {s.name for s in self.schedules},
            TargetKind.CHANNEL: {c.name for c in self.channels},
        }
        missing_sev = [s.value for s in Severity if s not in self.severities]

        def target_error(path: str, t: EscalationTarget) -> None:
            if t.kind == TargetKind.EMAIL:
                if not re.match(EMAIL_PATTERN, t.name):
                    errors.append(f"{path}: {t.name!r} is not an email address")
            elif t.name not in known[t.kind]:
                errors.append(f"{path}: unknown {t.kind.value} {t.name!r}")

        if missing_sev:
            errors.append(f"severities: missing {', '.join(missing_sev)}")
        for i, sched in enumerate(self.schedules):
            for j, user in enumerate(sched.users):
                if user not in users:
                    errors.append(f"schedules.{i}.users.{j}: unknown user {user!r}")
            for j, ov in enumerate(sched.overrides):
                if ov.user not in users:
                    errors.append(f"schedules.{i}.overrides.{j}.user: unknown user {ov.user!r}")
        calendars = {c.name for c in self.calendars} | {ALWAYS}
        for i, ep in enumerate(self.escalation_policies):
            for j, level in enumerate(ep.levels):
                at = f"escalation_policies.{i}.levels.{j}"
                for k, t in enumerate(level.targets):
                    target_error(f"{at}.targets.{k}", t)
                if level.when is not None and level.when not in calendars:
                    errors.append(f"{at}.when: unknown calendar {level.when!r}")
                if level.out_of_hours is not None:
                    if level.when is None:
                        errors.append(f"{at}.out_of_hours: needs `when: <calendar>` on the level")
                    for k, t in enumerate(level.out_of_hours.targets):
                        target_error(f"{at}.out_of_hours.targets.{k}", t)
        for i, cal in enumerate(self.calendars):
            if cal.name == ALWAYS:
                errors.append(f"calendars.{i}.name: {ALWAYS!r} is built in (every hour counts)")
        for sev, sp in self.severities.items():
            errors += _unknown_calendars(f"severities.{sev.value}.calendar", sp, calendars)
            for k, t in enumerate(sp.on_breach):
                target_error(f"severities.{sev.value}.on_breach.{k}", t)
        policies = {p.name for p in self.escalation_policies}
        keys: dict[str, str] = {}
        for i, svc in enumerate(self.services):
            if svc.escalation_policy not in policies:
                errors.append(
                    f"services.{i}.escalation_policy: unknown escalation policy "
                    f"{svc.escalation_policy!r}"
                )
            for sev, override in svc.sla.items():
                if override.calendar is not None:
                    errors += _unknown_calendars(
                        f"services.{i}.sla.{sev.value}.calendar", override, calendars
                    )
            for j, key in enumerate(svc.integration_keys):
                if key in keys:
                    errors.append(
                        f"services.{i}.integration_keys.{j}: key already used by {keys[key]!r}"
                    )
                keys[key] = svc.name
        services = {s.name for s in self.services}
        for i, svc in enumerate(self.services):
            if svc.public and not svc.display_name:
                errors.append(
                    f"services.{i}.display_name: a public service needs the name the status "
                    "page shows"
                )
        for i, holder in enumerate(self.stakeholders):
            for j, name in enumerate(holder.services):
                if name not in services:
                    errors.append(f"stakeholders.{i}.services.{j}: unknown service {name!r}")
            for k, t in enumerate(holder.targets):
                target_error(f"stakeholders.{i}.targets.{k}", t)
        for i, rule in enumerate(self.classification):
            if rule.service is not None and rule.service not in services:
                errors.append(f"classification.{i}.service: unknown service {rule.service!r}")
        for i, beat in enumerate(self.heartbeats):
            if beat.service not in services:
                errors.append(f"heartbeats.{i}.service: unknown service {beat.service!r}")
        for i, tok in enumerate(self.tokens):
            if tok.user not in users:
                errors.append(f"tokens.{i}.user: unknown user {tok.user!r}")
        slack_ids: dict[str, str] = {}
        for i, named in enumerate(self.users):
            if named.slack_id is None:
                continue
            if named.slack_id in slack_ids:
                errors.append(
                    f"users.{i}.slack_id: {named.slack_id!r} is already "
                    f"{slack_ids[named.slack_id]!r}'s"
                )
            slack_ids[named.slack_id] = named.name
        if self.review.calendar is not None and self.review.calendar not in calendars:
            errors.append(f"review.calendar: unknown calendar {self.review.calendar!r}")
        for field in ("facilitator_fallback", "owner"):
            name = getattr(self.review, field)
            if name is not None and name not in users:
                errors.append(f"review.{field}: unknown user {name!r}")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    # -- look-ups ---------------------------------------------------------------------
    def user(self, name: str) -> User | None:
        return next((u for u in self.users if u.name == name), None)

    def user_by_slack_id(self, slack_id: str) -> User | None:
        return next((u for u in self.users if u.slack_id == slack_id), None)

    def channel(self, name: str) -> Channel | None:
        return next((c for c in self.channels if c.name == name), None)

    def schedule(self, name: str) -> Schedule | None:
        return next((s for s in self.schedules if s.name == name), None)

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def heartbeat(self, name: str) -> Heartbeat | None:
        return next((h for h in self.heartbeats if h.name == name), None)

    def calendar(self, name: str) -> Calendar | None:
        return next((c for c in self.calendars if c.name == name), None)

    def review_policy(self) -> ReviewPolicy:
        """The review section as incidents take it: with its calendar's holidays added."""
        calendar = self.calendar(self.review.calendar) if self.review.calendar else None
        if calendar is None or not calendar.holidays:
            return self.review
        extra = [d.isoformat() for d in calendar.holidays]
        holidays = list(dict.fromkeys([*self.review.holidays, *extra]))
        return self.review.model_copy(update={"holidays": holidays})

    def severities_for(self, service: Service) -> dict[Severity, SeverityPolicy]:
        """The SLA targets of ``service``: the policy's severities with its overrides."""
        return {
            sev: service.sla[sev].applied_to(sp) if sev in service.sla else sp
            for sev, sp in self.severities.items()
        }

    def escalation_policy(self, name: str) -> EscalationPolicy | None:
        return next((p for p in self.escalation_policies if p.name == name), None)

    def service_for_key(self, integration_key: str) -> Service | None:
        return next((s for s in self.services if integration_key in s.integration_keys), None)

    def stakeholders_of(self, service: str) -> list[StakeholderRule]:
        """The stakeholder rules covering ``service`` (an incident snapshots them)."""
        return [rule for rule in self.stakeholders if rule.covers(service)]


def _unknown_calendars(path: str, sp: SeverityPolicy | SlaOverride, known: set[str]) -> list[str]:
    """``path: unknown calendar`` for each name ``sp.calendar`` gives that is not defined."""
    value = sp.calendar
    if value is None:
        return []
    if isinstance(value, str):
        return [] if value in known else [f"{path}: unknown calendar {value!r}"]
    return [
        f"{path}.{clock.value}: unknown calendar {name!r}"
        for clock, name in value.items()
        if name not in known
    ]
