"""Who gets what: escalation targets resolved to concrete deliveries, one per
(recipient, channel), each with its idempotency key."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from schemas.enums import ChannelKind, EventKind, TargetKind
from schemas.incident import IncidentSnapshot, TimelineEvent
from schemas.oncall import on_call
from schemas.policy import EscalationTarget, Policy, User

#: the target of the page the Slack bot posts to the policy's ``slack.default_channel``
SLACK_DEFAULT_TARGET = "slack:default_channel"

#: channel column of a delivery that could not be resolved (nothing is sent)
UNRESOLVED = "none"


@dataclass(frozen=True)
class Delivery:
    """One message to one recipient over one channel.

    ``problem`` is set when the target could not be resolved (unknown name, nobody on
    call): the delivery is recorded as failed without sending anything.
    """

    number: str
    seq: int
    target: str
    recipient: str
    channel: str
    address: str | None = None
    #: name shown in the message ("Alice Smith"); the policy name when no full name
    display_name: str = ""
    secret: str | None = field(default=None, repr=False)
    problem: str | None = None

    @property
    def key(self) -> str:
        return f"{self.number}:{self.seq}:{self.target}:{self.recipient}:{self.channel}"

    @property
    def dedup_key(self) -> tuple[str, str]:
        """Same channel and address (or same recipient, for console) means the same message."""
        if self.address:
            return (self.channel, self.address)
        who = "channel" if self.target.startswith(f"{TargetKind.CHANNEL.value}:") else "user"
        return (self.channel, f"{who}:{self.recipient}")


@dataclass
class Resolution:
    deliveries: list[Delivery]
    #: users the targets resolved to, in first-seen order
    recipients: list[str]


def user_contacts(user: User, *, slack_bot: bool = False) -> list[tuple[ChannelKind, str | None]]:
    """A user's channels in the policy: email, Slack, webhook; console when none is set.
    With the Slack bot (``slack_bot``), a user's ``slack_id`` gets the page as a DM."""
    contacts: list[tuple[ChannelKind, str | None]] = []
    if user.email:
        contacts.append((ChannelKind.EMAIL, user.email))
    if user.slack:
        contacts.append((ChannelKind.SLACK, user.slack))
    if slack_bot and user.slack_id:
        contacts.append((ChannelKind.SLACK, user.slack_id))
    if user.webhook:
        contacts.append((ChannelKind.WEBHOOK, user.webhook))
    return contacts or [(ChannelKind.CONSOLE, None)]


def resolve(
    policy: Policy,
    number: str,
    seq: int,
    targets: list[EscalationTarget],
    at: datetime,
    *,
    slack_bot: bool = False,
) -> Resolution:
    """Deliveries for ``targets`` at instant ``at`` (schedules resolved then), deduplicated:
    a user reached through two targets gets each message once, under the first target.
    ``slack_bot``: the Slack bot has a token, so users' ``slack_id`` are reached too."""
    deliveries: list[Delivery] = []
    recipients: list[str] = []
    seen: set[tuple[str, str]] = set()

    def add(delivery: Delivery) -> None:
        if delivery.problem is None:
            if delivery.dedup_key in seen:
                return
            seen.add(delivery.dedup_key)
        elif any(d.key == delivery.key for d in deliveries):
            return
        deliveries.append(delivery)

    def unresolved(target: str, recipient: str, problem: str) -> Delivery:
        return Delivery(number, seq, target, recipient, UNRESOLVED, problem=problem)

    def add_user(target: str, name: str) -> None:
        user = policy.user(name)
        if user is None:
            add(unresolved(target, name, f"unknown user {name!r}"))
            return
        if name not in recipients:
            recipients.append(name)
        for kind, address in user_contacts(user, slack_bot=slack_bot):
            add(
                Delivery(
                    number,
                    seq,
                    target,
                    name,
                    kind.value,
                    address,
                    display_name=user.full_name or user.name,
                )
            )

    for target in targets:
        label = str(target)
        if target.kind == TargetKind.USER:
            add_user(label, target.name)
        elif target.kind == TargetKind.SCHEDULE:
            schedule = policy.schedule(target.name)
            if schedule is None:
                add(unresolved(label, target.name, f"unknown schedule {target.name!r}"))
                continue
            users = on_call(schedule, at)
            if not users:
                add(unresolved(label, target.name, f"nobody on call for {target.name!r}"))
            for name in users:
                add_user(label, name)
        elif target.kind == TargetKind.EMAIL:
            # a stakeholder who is not a user: a plain address, by email only
            add(
                Delivery(
                    number,
                    seq,
                    label,
                    target.name,
                    ChannelKind.EMAIL.value,
                    target.name,
                    display_name=target.name,
                )
            )
        else:
            channel = policy.channel(target.name)
            if channel is None:
                add(unresolved(label, target.name, f"unknown channel {target.name!r}"))
                continue
            add(
                Delivery(
                    number,
                    seq,
                    label,
                    channel.name,
                    channel.kind.value,
                    channel.target or None,
                    display_name=channel.name,
                    secret=channel.secret,
                )
            )
    return Resolution(deliveries, recipients)


def default_channel_page(
    policy: Policy, incident: IncidentSnapshot, event: TimelineEvent
) -> list[Delivery]:
    """The new incident's page in the policy's ``slack.default_channel``, posted by the bot
    (the caller checks it has a token): one per incident, on its ``triggered`` page."""
    slack = policy.slack
    if slack is None or not slack.default_channel or event.kind != EventKind.TRIGGERED:
        return []
    channel = slack.default_channel
    return [
        Delivery(
            incident.number,
            event.seq,
            SLACK_DEFAULT_TARGET,
            channel,
            ChannelKind.SLACK.value,
            channel,
            display_name=channel,
        )
    ]


def on_console(deliveries: list[Delivery]) -> list[Delivery]:
    """A drill's deliveries under ``drills: {page: console}``: each recipient once, on the
    console (a log line), whatever channels its targets have; unresolved ones unchanged."""
    kept: list[Delivery] = []
    keys: set[str] = set()
    for delivery in deliveries:
        if delivery.problem is None:
            delivery = replace(
                delivery, channel=ChannelKind.CONSOLE.value, address=None, secret=None
            )
            if delivery.key in keys:
                continue
            keys.add(delivery.key)
        kept.append(delivery)
    return kept
