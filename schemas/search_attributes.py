"""Typed search attributes of incident workflows, so operators can run
``temporal workflow list --query "IncidentSeverity='SEV1'"``."""

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from schemas.classification import priority_for, severity_for
from schemas.enums import Status
from schemas.incident import Alert

INCIDENT_STATUS = SearchAttributeKey.for_keyword("IncidentStatus")
INCIDENT_SEVERITY = SearchAttributeKey.for_keyword("IncidentSeverity")
INCIDENT_SERVICE = SearchAttributeKey.for_keyword("IncidentService")
INCIDENT_PRIORITY = SearchAttributeKey.for_keyword("IncidentPriority")
INCIDENT_NUMBER = SearchAttributeKey.for_keyword("IncidentNumber")

ALL = [INCIDENT_STATUS, INCIDENT_SEVERITY, INCIDENT_SERVICE, INCIDENT_PRIORITY, INCIDENT_NUMBER]


def at_start(alert: Alert) -> TypedSearchAttributes:
    """What a new incident's run starts with, before its number is allocated: the client's
    start and a run that continues as a new incident for the same key (which must not
    inherit the closed incident's number and status)."""
    priority = priority_for(alert.impact, alert.urgency)
    severity = alert.severity or severity_for(priority)
    return TypedSearchAttributes(
        [
            SearchAttributePair(INCIDENT_STATUS, Status.TRIGGERED.value),
            SearchAttributePair(INCIDENT_SEVERITY, severity.value),
            SearchAttributePair(INCIDENT_SERVICE, alert.service),
            SearchAttributePair(INCIDENT_PRIORITY, priority.value),
        ]
    )
