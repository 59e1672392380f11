"""The vocabulary of incidentflow: every closed set of values, as string enums.

String enums serialise as their value, so they read well in JSON, SQL rows, search
attributes and templates alike.
"""

from enum import StrEnum


class Status(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    INVESTIGATING = "investigating"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Severity(StrEnum):
    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"


class Impact(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Urgency(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Priority(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"
    P5 = "P5"


class Category(StrEnum):
    SOFTWARE = "software"
    HARDWARE = "hardware"
    NETWORK = "network"
    SECURITY = "security"
    DATA = "data"
    USER_ERROR = "user_error"
    OTHER = "other"


class Role(StrEnum):
    COMMANDER = "commander"
    ASSIGNEE = "assignee"
    SCRIBE = "scribe"
    COMMUNICATIONS = "communications"


class Action(StrEnum):
    """Responder actions; each is one Update on the incident workflow."""

    ACKNOWLEDGE = "acknowledge"
    INVESTIGATE = "investigate"
    MITIGATE = "mitigate"
    RESOLVE = "resolve"
    CLOSE = "close"
    CANCEL = "cancel"
    REOPEN = "reopen"
    ASSIGN = "assign"
    CHANGE_SEVERITY = "change_severity"
    ADD_NOTE = "add_note"
    POST_STATUS_UPDATE = "post_status_update"
    ESCALATE = "escalate"
    MERGE_INTO = "merge_into"
    PAUSE = "pause"
    RESUME = "resume"
    LINK = "link"
    UNLINK = "unlink"


class EventKind(StrEnum):
    """Kinds of timeline events. Notification templates exist for the notifying subset."""

    TRIGGERED = "triggered"
    ALERT_REPEATED = "alert_repeated"
    ALERT_CLEARED = "alert_cleared"
    ACKNOWLEDGED = "acknowledged"
    INVESTIGATING = "investigating"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    REOPENED = "reopened"
    ASSIGNED = "assigned"
    SEVERITY_CHANGED = "severity_changed"
    NOTE_ADDED = "note_added"
    STATUS_UPDATE_POSTED = "status_update_posted"
    STATUS_UPDATE_DUE = "status_update_due"
    ESCALATED = "escalated"
    ESCALATION_EXHAUSTED = "escalation_exhausted"
    #: a level limited to a calendar waits for its working hours (``levels[].when``)
    ESCALATION_HELD = "escalation_held"
    PAUSED = "paused"
    RESUMED = "resumed"
    SLA_BREACHED = "sla_breached"
    MERGED = "merged"
    NOTIFICATION_FAILED = "notification_failed"
    REVIEW_SCHEDULED = "review_scheduled"
    REVIEW_REMINDER = "review_reminder"
    REVIEW_OVERDUE = "review_overdue"
    REVIEW_COMPLETED = "review_completed"
    REVIEW_ATTENDEES_ADDED = "review_attendees_added"
    ACTION_ITEM_DUE = "action_item_due"
    LINKED = "linked"
    UNLINKED = "unlinked"


class Clock(StrEnum):
    """The SLA clocks an incident keeps."""

    ACK = "ack"
    MITIGATE = "mitigate"
    RESOLVE = "resolve"
    UPDATE = "update"


class Scope(StrEnum):
    INGEST = "ingest"
    RESPOND = "respond"
    READ = "read"
    ADMIN = "admin"


class TargetKind(StrEnum):
    USER = "user"
    SCHEDULE = "schedule"
    CHANNEL = "channel"
    #: a plain address of someone who is not a responder (stakeholders: ``email:cfo@x.com``)
    EMAIL = "email"


class ChannelKind(StrEnum):
    EMAIL = "email"
    SLACK = "slack"
    WEBHOOK = "webhook"
    APPRISE = "apprise"
    CONSOLE = "console"


class StatusPhase(StrEnum):
    """Where an incident stands, as a public status update says (Statuspage's names)."""

    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class ComponentStatus(StrEnum):
    """A public component's status (Statuspage's names), best first."""

    OPERATIONAL = "operational"
    DEGRADED_PERFORMANCE = "degraded_performance"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"


class LinkKind(StrEnum):
    """How one incident relates to another; each kind has an inverse (``INVERSE_LINK``) that
    the other incident keeps."""

    RELATED = "related"
    CAUSED_BY = "caused_by"
    CAUSES = "causes"
    PARENT_OF = "parent_of"
    CHILD_OF = "child_of"


#: the kind the other incident records for a link of this kind
INVERSE_LINK: dict[LinkKind, LinkKind] = {
    LinkKind.RELATED: LinkKind.RELATED,
    LinkKind.CAUSED_BY: LinkKind.CAUSES,
    LinkKind.CAUSES: LinkKind.CAUSED_BY,
    LinkKind.PARENT_OF: LinkKind.CHILD_OF,
    LinkKind.CHILD_OF: LinkKind.PARENT_OF,
}
