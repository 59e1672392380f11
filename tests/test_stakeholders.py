"""Stakeholders and role holders are told (``schemas.incident_rules``, no Temporal), the policy
checks its ``stakeholders:`` and public services, and the status page's pure rules
(``schemas.status_page``): component status, what is shown, summary.json's schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from schemas.actions import AssignInput, MitigateInput, StatusUpdateInput
from schemas.actors import Person
from schemas.enums import (
    Category,
    ComponentStatus,
    EventKind,
    Impact,
    Priority,
    Role,
    Severity,
    Status,
    StatusPhase,
    Urgency,
)
from schemas.incident import EscalationState, IncidentPolicy, IncidentSnapshot
from schemas.incident_rules import IncidentRules, Notify, Publish
from schemas.policy import (
    EscalationLevel,
    EscalationPolicy,
    EscalationTarget,
    Policy,
    SeverityPolicy,
    StakeholderRule,
)
from schemas.status_page import IncidentFacts, PublicUpdate, Summary, build_view, summary
from tests.support_incidents import make_policy

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
ALICE = Person(name="alice")
SCHEMA = Path(__file__).parent.parent / "docs" / "status-summary.schema.json"


def _t(*names: str) -> list[EscalationTarget]:
    return [EscalationTarget.model_validate(n) for n in names]


def _rules(
    severity: Severity = Severity.SEV1, *, patched: bool = True, update_every: bool = False
) -> IncidentRules:
    stakeholders = [
        StakeholderRule(name="execs", severities=[Severity.SEV1], targets=_t("email:ceo@ex.com")),
        StakeholderRule(
            name="support",
            services=["checkout"],
            events=[EventKind.STATUS_UPDATE_POSTED],
            targets=_t("channel:support", "user:erin"),
        ),
        StakeholderRule(name="elsewhere", services=["search"], targets=_t("user:zed")),
    ]
    sp = SeverityPolicy(
        ack_within=timedelta(minutes=5),
        mitigate_within=timedelta(hours=1),
        resolve_within=timedelta(hours=4),
        update_every=timedelta(minutes=30) if update_every else None,
    )
    policy = IncidentPolicy(
        service="checkout",
        escalation=EscalationPolicy(
            name="ops", levels=[EscalationLevel(targets=_t("user:l1"), delay=timedelta(hours=9))]
        ),
        severities={s: sp for s in Severity},
        stakeholders=stakeholders,
    )
    snapshot = IncidentSnapshot(
        number="INC-7",
        title="internal: db-7 disk full",
        service="checkout",
        severity=severity,
        priority=Priority.P1,
        impact=Impact.HIGH,
        urgency=Urgency.HIGH,
        category=Category.SOFTWARE,
        created_at=T0,
        escalation=EscalationState(policy=policy.escalation),
    )
    return IncidentRules(snapshot, policy, tells_stakeholders=lambda: patched)


def _notified(effects: list[Any]) -> list[str]:
    return [str(t) for e in effects if isinstance(e, Notify) for t in e.targets]


def test_status_update_reaches_stakeholders_and_a_public_one_is_published() -> None:
    rules = _rules()
    rules.trigger(ALICE, {}, T0)
    private = rules.act(StatusUpdateInput(actor=ALICE, text="looking into it"), T0)
    assert _notified(private.effects) == ["email:ceo@ex.com", "channel:support", "user:erin"]
    assert not [e for e in private.effects if isinstance(e, Publish)]
    assert private.events[0].details == {"text": "looking into it"}
    public = rules.act(
        StatusUpdateInput(
            actor=ALICE,
            text="Payments fail for some",
            public=True,
            phase=StatusPhase.IDENTIFIED,
            component_status=ComponentStatus.PARTIAL_OUTAGE,
        ),
        T0,
    )
    assert [type(e) for e in public.effects] == [Notify, Publish]
    assert public.events[0].details == {
        "text": "Payments fail for some",
        "public": True,
        "phase": "identified",
        "component_status": "partial_outage",
    }


def test_severity_filters_and_lifecycle_events() -> None:
    rules = _rules(Severity.SEV3)
    trigger = rules.trigger(ALICE, {}, T0)
    assert _notified(trigger.effects) == []  # execs hear SEV1 only; support only updates
    sev1 = _rules(Severity.SEV1)
    trigger = sev1.trigger(ALICE, {}, T0)
    assert _notified(trigger.effects) == ["email:ceo@ex.com"]
    mitigated = sev1.act(MitigateInput(actor=ALICE), T0)
    assert _notified(mitigated.effects) == ["user:l1", "email:ceo@ex.com"]


def test_before_the_patch_nobody_new_is_told() -> None:
    rules = _rules(patched=False)
    assert _notified(rules.trigger(ALICE, {}, T0).effects) == []
    step = rules.act(StatusUpdateInput(actor=ALICE, text="x", public=True), T0)
    assert step.effects == []
    assign = rules.act(AssignInput(actor=ALICE, role=Role.COMMANDER, user="bob"), T0)
    assert assign.effects == []


def test_assign_tells_the_new_and_the_previous_holder() -> None:
    rules = _rules()
    first = rules.act(AssignInput(actor=ALICE, role=Role.COMMANDER, user="bob"), T0)
    assert _notified(first.effects) == ["user:bob"]
    second = rules.act(AssignInput(actor=ALICE, role=Role.COMMANDER, user="carol"), T0)
    assert _notified(second.effects) == ["user:carol", "user:bob"]
    assert second.events[0].details == {"role": "commander", "user": "carol", "previous": "bob"}


def test_reminders_go_to_the_communications_lead_once_assigned() -> None:
    rules = _rules(update_every=True)
    rules.trigger(ALICE, {}, T0)
    rules.act(AssignInput(actor=ALICE, role=Role.COMMANDER, user="bob"), T0)
    rules.s.deadlines.update = T0
    due = rules.fire_due(T0 + timedelta(seconds=1))
    assert _notified(due.effects) == ["user:bob"]
    rules.act(AssignInput(actor=ALICE, role=Role.COMMUNICATIONS, user="dave"), T0)
    rules.s.deadlines.update = T0
    due = rules.fire_due(T0 + timedelta(seconds=2))
    reminders = [e for e in due.effects if isinstance(e, Notify)]
    assert reminders[0].event.kind == EventKind.STATUS_UPDATE_DUE
    assert _notified(due.effects) == ["user:dave"]


def _policy_data(**service: Any) -> dict[str, Any]:
    data = make_policy().model_dump(mode="json")
    data["services"][0].update(service)
    return data


def test_policy_checks_stakeholders_and_public_services() -> None:
    data = _policy_data(public=True)
    data["stakeholders"] = [
        {"name": "a", "services": ["nope"], "targets": ["email:not-an-address", "user:ghost"]},
        {"name": "b", "events": ["note_added"], "targets": ["user:alice"]},
    ]
    with pytest.raises(ValidationError) as err:
        Policy.model_validate(data)
    text = str(err.value)
    assert "stakeholders are not told about note_added" in text
    data["stakeholders"] = data["stakeholders"][:1]
    with pytest.raises(ValidationError) as err:
        Policy.model_validate(data)
    text = str(err.value)
    for expected in (
        "services.0.display_name: a public service needs",
        "stakeholders.0.services.0: unknown service 'nope'",
        "stakeholders.0.targets.0: 'not-an-address' is not an email address",
        "stakeholders.0.targets.1: unknown user 'ghost'",
    ):
        assert expected in text
    ok = _policy_data(public=True, display_name="Checkout")
    ok["stakeholders"] = [{"name": "x", "targets": ["email:cfo@example.com"]}]
    policy = Policy.model_validate(ok)
    assert policy.stakeholders_of("checkout")[0].events == [
        EventKind.TRIGGERED,
        EventKind.MITIGATED,
        EventKind.RESOLVED,
        EventKind.STATUS_UPDATE_POSTED,
    ]


def test_component_status_follows_severity_and_overrides() -> None:
    policy = Policy.model_validate(_policy_data(public=True, display_name="Checkout"))
    now = T0 + timedelta(hours=2)

    def facts(severity: Severity, *updates: PublicUpdate, status: Status = Status.TRIGGERED) -> Any:
        return IncidentFacts(
            number="INC-1",
            service="checkout",
            severity=severity,
            status=status,
            created_at=T0,
            updates=list(updates),
        )

    expected = {
        Severity.SEV1: ComponentStatus.MAJOR_OUTAGE,
        Severity.SEV2: ComponentStatus.PARTIAL_OUTAGE,
        Severity.SEV3: ComponentStatus.DEGRADED_PERFORMANCE,
        Severity.SEV4: ComponentStatus.OPERATIONAL,
    }
    for severity, status in expected.items():
        view = build_view(policy, [facts(severity)], url="https://x/status", now=now)
        assert view.components[0].status == status
        assert bool(view.incidents) == (severity != Severity.SEV4)
    override = PublicUpdate(
        seq=3, at=T0, public=False, component_status=ComponentStatus.DEGRADED_PERFORMANCE
    )
    view = build_view(policy, [facts(Severity.SEV1, override)], url="https://x/status", now=now)
    assert view.components[0].status == ComponentStatus.DEGRADED_PERFORMANCE
    assert view.incidents[0].updates == []  # a private update is never shown
    resolved = facts(Severity.SEV1, status=Status.RESOLVED)
    resolved.resolved_at = T0 + timedelta(hours=1)
    view = build_view(policy, [resolved], url="https://x/status", now=now)
    assert view.components[0].status == ComponentStatus.OPERATIONAL
    assert view.incidents == []  # no public update: not in the history either
    assert view.components[0].bars[-1].status == ComponentStatus.MAJOR_OUTAGE
    assert view.components[0].uptime_percent < 100


def test_summary_matches_its_documented_schema() -> None:
    """docs/status-summary.schema.json is the model's schema, and answers validate."""
    documented = json.loads(SCHEMA.read_text())
    assert documented == Summary.model_json_schema(mode="serialization")
    policy = Policy.model_validate(_policy_data(public=True, display_name="Checkout"))
    update = PublicUpdate(
        seq=2, at=T0, public=True, phase=StatusPhase.MONITORING, text="A fix is rolling out"
    )
    incident = IncidentFacts(
        number="INC-9",
        service="checkout",
        severity=Severity.SEV2,
        status=Status.MITIGATED,
        created_at=T0,
        updates=[update],
    )
    view = build_view(policy, [incident], url="https://x/status", now=T0 + timedelta(hours=1))
    answer = json.loads(summary(view).model_dump_json())
    jsonschema.validate(answer, documented)
    assert answer["status"] == {"indicator": "major", "description": "Partial System Outage"}
    assert answer["incidents"][0]["status"] == "monitoring"
    assert answer["incidents"][0]["monitoring_at"] is not None
