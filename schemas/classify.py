"""Classification rules applied to an alert's labels, so an alert is categorised on arrival."""

from __future__ import annotations

import re
from functools import lru_cache

from pydantic import BaseModel, Field

from schemas.enums import Category, Impact, Severity, Urgency
from schemas.policy import ClassificationRule

FIELDS = ("service", "category", "impact", "urgency", "severity")


class Classification(BaseModel):
    """What the rules decided; ``None`` where no matching rule set the field."""

    service: str | None = None
    category: Category | None = None
    impact: Impact | None = None
    urgency: Urgency | None = None
    severity: Severity | None = None
    #: indexes of the rules that matched, in order (for "why was this classified so")
    matched: list[int] = Field(default_factory=list)


def rule_matches(labels: dict[str, str], rule: ClassificationRule) -> bool:
    """Every matcher's label is present and its value fully matches the regex."""
    for label, pattern in rule.match.items():
        value = labels.get(label)
        if value is None or _compiled(pattern).fullmatch(value) is None:
            return False
    return True


def classify(labels: dict[str, str], rules: list[ClassificationRule]) -> Classification:
    """Apply ``rules`` in order: each matching rule fills the fields it defines that no
    earlier rule has set. Specific rules therefore go first and broad defaults last, the
    way firewall and routing tables read.
    """
    result: dict[str, object] = {}
    matched: list[int] = []
    for index, rule in enumerate(rules):
        if not rule_matches(labels, rule):
            continue
        matched.append(index)
        for field in FIELDS:
            value = getattr(rule, field)
            if value is not None and field not in result:
                result[field] = value
    return Classification.model_validate({**result, "matched": matched})


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
