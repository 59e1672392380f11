"""ITIL priority matrix and the default severity of each priority. Pure functions."""

from schemas.enums import Impact, Priority, Severity, Urgency

PRIORITY_MATRIX: dict[tuple[Impact, Urgency], Priority] = {
    (Impact.HIGH, Urgency.HIGH): Priority.P1,
    (Impact.HIGH, Urgency.MEDIUM): Priority.P2,
    (Impact.HIGH, Urgency.LOW): Priority.P3,
    (Impact.MEDIUM, Urgency.HIGH): Priority.P2,
    (Impact.MEDIUM, Urgency.MEDIUM): Priority.P3,
    (Impact.MEDIUM, Urgency.LOW): Priority.P4,
    (Impact.LOW, Urgency.HIGH): Priority.P3,
    (Impact.LOW, Urgency.MEDIUM): Priority.P4,
    (Impact.LOW, Urgency.LOW): Priority.P5,
}

DEFAULT_SEVERITY: dict[Priority, Severity] = {
    Priority.P1: Severity.SEV1,
    Priority.P2: Severity.SEV2,
    Priority.P3: Severity.SEV3,
    Priority.P4: Severity.SEV4,
    Priority.P5: Severity.SEV4,
}


def priority_for(impact: Impact, urgency: Urgency) -> Priority:
    """Priority of an incident from its impact and urgency (ITIL matrix)."""
    return PRIORITY_MATRIX[(Impact(impact), Urgency(urgency))]


def severity_for(priority: Priority) -> Severity:
    """Default severity when an alert does not name one."""
    return DEFAULT_SEVERITY[Priority(priority)]
