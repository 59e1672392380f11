"""Activity names and their input/output models: the contract between ``workflows/`` and
``activities/``. Workflows call activities by these names, so workflow code never imports
the modules that do I/O."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.incident import IncidentSnapshot, SlackChannel, SlackMessage, TimelineEvent
from schemas.policy import EscalationTarget

ALLOCATE_INCIDENT_NUMBER = "allocate_incident_number"
RECORD_INCIDENT = "record_incident"
#: allocate the number and write the first ticket row and events in one activity
OPEN_INCIDENT = "open_incident"
NOTIFY = "notify"
SYNC_SLACK = "sync_slack"
#: a public status update to the status page's confirmed subscribers
MAIL_SUBSCRIBERS = "mail_subscribers"
#: a subscription's confirmation mail (``StatusSubscriptionWorkflow``)
SEND_SUBSCRIPTION_CONFIRMATION = "send_subscription_confirmation"


class AllocateNumberInput(BaseModel):
    workflow_id: str
    run_id: str = ""


class RecordIncidentInput(BaseModel):
    """Upsert the ticket row and insert the events (if absent) in one transaction."""

    snapshot: IncidentSnapshot
    events: list[TimelineEvent] = Field(default_factory=list)


class NotifyInput(BaseModel):
    """Tell ``targets`` about ``event``; the notification key is (number, event.seq, target)."""

    incident: IncidentSnapshot
    event: TimelineEvent
    targets: list[EscalationTarget]
    #: a page (trigger, escalation): the Slack bot's message carries the action buttons and
    #: is returned to be kept current; a notice is posted as it is
    page: bool = False


class FailedDelivery(BaseModel):
    target: str
    recipient: str
    channel: str
    reason: str


class NotifyResult(BaseModel):
    delivered: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)
    failed: list[FailedDelivery] = Field(default_factory=list)
    #: users the targets resolved to (schedules resolved at the event's time)
    recipients: list[str] = Field(default_factory=list)
    #: pages the Slack bot posted (also those an earlier attempt posted), to keep current
    slack_messages: list[SlackMessage] = Field(default_factory=list)


class SyncSlackInput(BaseModel):
    """Bring Slack up to date with the incident: update its pages in place, open its channel
    (severities in ``slack.incident_channels``), post new timeline events there, archive it
    once closed. Every part is idempotent, so a retried activity repeats nothing."""

    incident: IncidentSnapshot
    #: rewrite the incident's pages (``chat.update``): its status, level or commander changed
    update_messages: bool = False
    #: open the incident channel if it is not yet open
    open_channel: bool = False
    #: timeline events to post to the incident channel
    events: list[TimelineEvent] = Field(default_factory=list)
    #: policy users to invite to the incident channel (the commander, the paged responders)
    invite: list[str] = Field(default_factory=list)
    #: archive the incident channel (the incident is closed)
    archive: bool = False


class SyncSlackResult(BaseModel):
    channel: SlackChannel | None = None
    #: the channel's pinned summary, posted now: kept current like the pages
    summary: SlackMessage | None = None


class PublishInput(BaseModel):
    """Mail a public status update (``event``) to the confirmed subscribers; idempotent per
    (number, event seq, subscriber). The activity reads what may be shown from the policy."""

    incident: IncidentSnapshot
    event: TimelineEvent


class PublishResult(BaseModel):
    sent: int = 0
    skipped: int = 0
    failed: int = 0


class SubscriptionRequest(BaseModel):
    """Someone asked ``POST /status/subscribe`` for ``email`` (already checked)."""

    email: str = Field(min_length=3, max_length=254)
