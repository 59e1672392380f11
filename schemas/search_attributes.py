"""Typed search attributes of incident workflows, so operators can run
``temporal workflow list --query "IncidentSeverity='SEV1'"``."""

from temporalio.common import SearchAttributeKey

INCIDENT_STATUS = SearchAttributeKey.for_keyword("IncidentStatus")
INCIDENT_SEVERITY = SearchAttributeKey.for_keyword("IncidentSeverity")
INCIDENT_SERVICE = SearchAttributeKey.for_keyword("IncidentService")
INCIDENT_PRIORITY = SearchAttributeKey.for_keyword("IncidentPriority")
INCIDENT_NUMBER = SearchAttributeKey.for_keyword("IncidentNumber")

ALL = [INCIDENT_STATUS, INCIDENT_SEVERITY, INCIDENT_SERVICE, INCIDENT_PRIORITY, INCIDENT_NUMBER]
