"""Typed actors (schemas/actors.py) and the rules on who acknowledges and takes command
(schemas/lifecycle.py): pure, no stack."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from temporalio.contrib.pydantic import pydantic_data_converter

from schemas.actions import AcknowledgeInput, AlertClear, ResolveInput
from schemas.actors import (
    ALERTMANAGER,
    INCIDENTFLOW,
    MONITORING,
    PAGERDUTY,
    RESERVED_NAMES,
    Actor,
    ActorKind,
    Integration,
    IntegrationName,
    Person,
    System,
)
from schemas.enums import Action
from schemas.incident import Alert
from schemas.lifecycle import HANDS_ON, acknowledges, takes_command
from schemas.policy import Policy
from tests.support_incidents import make_policy

ACTOR: TypeAdapter[Person | Integration | System] = TypeAdapter(Actor)


@pytest.mark.parametrize(
    ("wire", "kind"),
    [
        ("alice", ActorKind.PERSON),
        ("Alice Archer", ActorKind.PERSON),
        ("monitoring", ActorKind.INTEGRATION),
        ("alertmanager", ActorKind.INTEGRATION),
        ("pagerduty", ActorKind.INTEGRATION),
        ("incidentflow", ActorKind.SYSTEM),
    ],
)
def test_a_bare_string_reads_as_the_actor_it_names_and_writes_back_unchanged(
    wire: str, kind: ActorKind
) -> None:
    actor = ACTOR.validate_python(wire)
    assert actor.kind == kind and actor.name == wire and str(actor) == wire
    assert ACTOR.dump_python(actor) == wire and type(ACTOR.dump_python(actor)) is str
    assert ACTOR.dump_json(actor) == f'"{wire}"'.encode()
    assert ACTOR.validate_json(ACTOR.dump_json(actor)) == actor


def test_the_structured_form_is_accepted_and_still_written_as_a_string() -> None:
    assert ACTOR.validate_python({"kind": "person", "name": "bob"}) == Person(name="bob")
    assert ACTOR.validate_python(Person(name="bob")) == Person(name="bob")
    assert ACTOR.dump_python(PAGERDUTY) == "pagerduty"
    assert ACTOR.dump_python(INCIDENTFLOW) == "incidentflow"


def test_no_person_carries_a_reserved_name() -> None:
    assert RESERVED_NAMES == {"monitoring", "alertmanager", "pagerduty", "incidentflow"}
    for name in RESERVED_NAMES:
        with pytest.raises(ValidationError, match="name of an integration or of incidentflow"):
            Person(name=name)
    with pytest.raises(ValidationError, match="at least 1 character"):
        ACTOR.validate_python("")
    with pytest.raises(ValidationError):
        ACTOR.validate_python({"kind": "integration", "name": "nagios"})
    with pytest.raises(ValidationError):
        ACTOR.validate_python({"kind": "system", "name": "cron"})
    with pytest.raises(ValidationError):
        ACTOR.validate_python(42)


def test_policy_refuses_a_user_with_a_reserved_name() -> None:
    data: dict[str, Any] = make_policy().model_dump(mode="json")
    data["users"].append({"name": "pagerduty"})
    with pytest.raises(ValidationError, match=r"users\.4\.name: 'pagerduty' is reserved"):
        Policy.model_validate(data)


def test_payloads_written_with_actor_strings_still_deserialize() -> None:
    """What histories and activity payloads carried before actors were typed."""
    at = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    old_ack = b'{"actor":"pagerduty","number":"INC-7","note":null}'
    old_clear = b'{"actor":"alertmanager","at":"2026-03-02T09:30:00Z"}'
    old_alert = b'{"service":"checkout","title":"5xx","actor":"monitoring"}'
    assert AcknowledgeInput.model_validate_json(old_ack).actor == PAGERDUTY
    assert AlertClear.model_validate_json(old_clear) == AlertClear(actor=ALERTMANAGER, at=at)
    assert Alert.model_validate_json(old_alert).actor == MONITORING
    assert AlertClear().actor == MONITORING and Alert(service="s", title="t").actor == MONITORING
    # and what a newer worker writes, an older one (actor: str) reads: the same strings
    payload = pydantic_data_converter.payload_converter.to_payloads(
        [ResolveInput(actor="alice", number="INC-7")]
    )[0]
    assert b'"actor":"alice"' in payload.data
    (back,) = pydantic_data_converter.payload_converter.from_payloads([payload], [ResolveInput])
    assert back.actor == Person(name="alice")


def test_action_input_keeps_its_actor_limit() -> None:
    AcknowledgeInput(actor="a" * 200)
    with pytest.raises(ValidationError, match="at most 200 characters"):
        AcknowledgeInput(actor="a" * 201)


@pytest.mark.parametrize("action", sorted(HANDS_ON))
def test_a_persons_hands_on_action_acknowledges_and_takes_command(action: Action) -> None:
    alice = Person(name="alice")
    assert acknowledges(action, alice) and takes_command(action, alice)
    assert not takes_command(action, PAGERDUTY) and not takes_command(action, INCIDENTFLOW)
    assert not acknowledges(action, INCIDENTFLOW)


def test_an_integration_acknowledges_only_by_relaying_an_acknowledge() -> None:
    for name in IntegrationName:
        integration = Integration(name=name)
        assert acknowledges(Action.ACKNOWLEDGE, integration)  # PagerDuty's acknowledge event
        for action in HANDS_ON - {Action.ACKNOWLEDGE}:  # a clear, a PagerDuty resolve
            assert not acknowledges(action, integration)


@pytest.mark.parametrize("action", sorted(set(Action) - HANDS_ON))
def test_other_actions_never_acknowledge(action: Action) -> None:
    assert not acknowledges(action, Person(name="alice"))
    assert not takes_command(action, Person(name="alice"))
