"""Classification rules: in order, full-match regexes, first rule to set a field wins it."""

from pathlib import Path

import pytest

from schemas.classify import Classification, classify
from schemas.enums import Category, Impact, Severity, Urgency
from schemas.policy import ClassificationRule
from schemas.policy_file import load_policy

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "policy.yaml"


def rule(match: dict[str, str], **fields: str) -> ClassificationRule:
    return ClassificationRule.model_validate({"match": match, **fields})


RULES = [
    rule({"team": "payments"}, service="checkout", category="software"),
    rule({"alertname": "Disk.*"}, category="hardware"),
    rule({"severity": "critical", "env": "prod"}, impact="high", urgency="high"),
    rule({"severity": "critical"}, impact="medium", urgency="high", severity="SEV2"),
    rule({"team": ".*"}, service="catch-all", category="other", impact="low"),
]

CASES = [
    ("no labels: nothing matches", {}, Classification()),
    (
        "one rule",
        {"team": "payments"},
        Classification(
            service="checkout", category=Category.SOFTWARE, impact=Impact.LOW, matched=[0, 4]
        ),
    ),
    (
        "regex is fully matched, not searched",
        {"team": "payments-eu", "alertname": "HighDisk"},
        Classification(
            service="catch-all", category=Category.OTHER, impact=Impact.LOW, matched=[4]
        ),
    ),
    (
        "earlier rule wins a field, later rules fill the rest",
        {"team": "payments", "alertname": "DiskFull"},
        Classification(
            service="checkout", category=Category.SOFTWARE, impact=Impact.LOW, matched=[0, 1, 4]
        ),
    ),
    (
        "every matcher of a rule must match",
        {"severity": "critical", "env": "staging"},
        Classification(
            impact=Impact.MEDIUM, urgency=Urgency.HIGH, severity=Severity.SEV2, matched=[3]
        ),
    ),
    (
        "the specific rule first, the general one only adds severity",
        {"severity": "critical", "env": "prod"},
        Classification(
            impact=Impact.HIGH, urgency=Urgency.HIGH, severity=Severity.SEV2, matched=[2, 3]
        ),
    ),
    (
        "a missing label is no match, even for .*",
        {"alertname": "DiskFull"},
        Classification(category=Category.HARDWARE, matched=[1]),
    ),
]


@pytest.mark.parametrize(("labels", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_classify(labels: dict[str, str], expected: Classification) -> None:
    assert classify(labels, RULES) == expected


def test_no_rules() -> None:
    assert classify({"team": "payments"}, []) == Classification()


def test_example_policy_rules() -> None:
    rules = load_policy(EXAMPLE).classification
    disk = classify({"alertname": "DiskWillFillIn4Hours", "severity": "critical"}, rules)
    assert (disk.category, disk.impact, disk.urgency, disk.service) == (
        Category.HARDWARE,
        Impact.HIGH,
        Urgency.HIGH,
        None,
    )
    payments = classify({"team": "payments", "severity": "warning"}, rules)
    assert (payments.service, payments.category, payments.urgency) == (
        "checkout",
        Category.SOFTWARE,
        Urgency.LOW,
    )
    etl = classify({"pipeline": "nightly-orders"}, rules)
    assert (etl.service, etl.category) == ("data-pipeline", Category.DATA)
    assert classify({"pipeline": ""}, rules).service is None  # ".+" needs a character
