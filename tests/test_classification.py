"""The ITIL priority matrix, cell by cell, and the default severity of each priority."""

import pytest

from schemas.classification import priority_for, severity_for
from schemas.enums import Impact, Priority, Severity, Urgency

# written out by hand from the ITIL matrix, not derived from the code under test
MATRIX = [
    ("high", "high", "P1"),
    ("high", "medium", "P2"),
    ("high", "low", "P3"),
    ("medium", "high", "P2"),
    ("medium", "medium", "P3"),
    ("medium", "low", "P4"),
    ("low", "high", "P3"),
    ("low", "medium", "P4"),
    ("low", "low", "P5"),
]


@pytest.mark.parametrize(("impact", "urgency", "priority"), MATRIX)
def test_priority_matrix_cell(impact: str, urgency: str, priority: str) -> None:
    assert priority_for(Impact(impact), Urgency(urgency)) is Priority(priority)


def test_matrix_covers_every_combination_exactly_once() -> None:
    cells = {(i, u) for i, u, _ in MATRIX}
    assert cells == {(i.value, u.value) for i in Impact for u in Urgency}


def test_plain_strings_are_accepted() -> None:
    """Callers holding raw JSON values need not convert them first."""
    assert priority_for("high", "medium") is Priority.P2  # type: ignore[arg-type]
    assert severity_for("P5") is Severity.SEV4  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("priority", "severity"),
    [("P1", "SEV1"), ("P2", "SEV2"), ("P3", "SEV3"), ("P4", "SEV4"), ("P5", "SEV4")],
)
def test_default_severity_of_priority(priority: str, severity: str) -> None:
    assert severity_for(Priority(priority)) is Severity(severity)


def test_unknown_values_are_rejected() -> None:
    with pytest.raises(ValueError):
        priority_for("critical", "high")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        severity_for("P0")  # type: ignore[arg-type]
