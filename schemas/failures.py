"""The types of the ``ApplicationError``s that workflows and activities raise on purpose.

A client tells a refusal from a fault by this type (``err.type`` / ``failure.type``), so
the workflow that raises it and the client that matches it read the same enum. The values
are the wire form written in histories and sent to clients: never rename one.
"""

from enum import StrEnum


class FailureType(StrEnum):
    #: the incident is closed (or handed over): a new alert must start a new incident
    INCIDENT_CLOSED = "IncidentClosed"
    #: the action names an incident number this workflow ID no longer runs
    INCIDENT_NOT_FOUND = "IncidentNotFound"
    #: the lifecycle forbids the action from the current status
    ILLEGAL_TRANSITION = "IllegalTransition"
    #: the actor lacks the scope (waiving a review needs admin)
    FORBIDDEN = "Forbidden"
    #: the review is completed or waived
    REVIEW_CLOSED = "ReviewClosed"
    ACTION_ITEM_EXISTS = "ActionItemExists"
    ACTION_ITEM_CLOSED = "ActionItemClosed"
    ACTION_ITEM_NOT_FOUND = "ActionItemNotFound"
    #: the ticket store has not received the incident's whole timeline yet (retried)
    TIMELINE_INCOMPLETE = "TimelineIncomplete"
    #: a ticket write without an incident number (never retried)
    MISSING_INCIDENT_NUMBER = "MissingIncidentNumber"
    #: some deliveries failed for now: the ``notify`` activity is retried
    NOTIFICATION_DELIVERY_RETRY = "NotificationDeliveryRetry"
