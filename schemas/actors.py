"""Who acted on an incident: a person, an integration or incidentflow itself.

What an actor may cause is decided by its kind, never by comparing names: only a person's
action acknowledges an incident or makes its commander (the rules are
``schemas.lifecycle.acknowledges`` and ``takes_command``).

Wire form: a bare string, exactly as before actors were typed. A person is their name; an
integration or the system is its reserved name (``RESERVED_NAMES``). So histories, activity
payloads, ticket rows and API responses written earlier still read, and a worker still on
the previous release reads what a newer one writes. Because the reserved names alone tell
the kinds apart, no person may carry one: ``Person`` refuses them and so does the policy's
user list.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
)


class ActorKind(StrEnum):
    PERSON = "person"
    INTEGRATION = "integration"
    SYSTEM = "system"


class IntegrationName(StrEnum):
    """The systems that send alerts and act on incidents in their own name."""

    #: any monitoring system: the default of an alert, and repeats and clears with no sender
    MONITORING = "monitoring"
    ALERTMANAGER = "alertmanager"
    PAGERDUTY = "pagerduty"


#: incidentflow's own name: clocks, escalation, the hand-over to the review
SYSTEM_NAME: Final = "incidentflow"

#: names that are never a person's
RESERVED_NAMES: frozenset[str] = frozenset({*(n.value for n in IntegrationName), SYSTEM_NAME})


class _Actor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str

    def __str__(self) -> str:
        return f"{self.name}"  # a plain str, also for an IntegrationName


class Person(_Actor):
    """Someone with a name in the policy (a token's user, the dashboard's user, the CLI's
    ``--actor``)."""

    kind: Literal[ActorKind.PERSON] = ActorKind.PERSON
    name: str = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_NAMES:
            raise ValueError(f"{name!r} is the name of an integration or of incidentflow")
        return name


class Integration(_Actor):
    kind: Literal[ActorKind.INTEGRATION] = ActorKind.INTEGRATION
    name: IntegrationName


class System(_Actor):
    kind: Literal[ActorKind.SYSTEM] = ActorKind.SYSTEM
    name: Literal["incidentflow"] = SYSTEM_NAME


def _from_wire(value: Any) -> Any:
    """A bare string (the wire form) becomes the actor it names; anything else is left to
    the discriminated union."""
    if not isinstance(value, str):
        return value
    if value == SYSTEM_NAME:
        return {"kind": ActorKind.SYSTEM, "name": value}
    if value in RESERVED_NAMES:
        return {"kind": ActorKind.INTEGRATION, "name": value}
    return {"kind": ActorKind.PERSON, "name": value}


Actor = Annotated[
    Person | Integration | System,
    Field(discriminator="kind"),
    BeforeValidator(_from_wire),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "description": "a person's name, or an integration's or incidentflow's own name",
        }
    ),
]

MONITORING = Integration(name=IntegrationName.MONITORING)
ALERTMANAGER = Integration(name=IntegrationName.ALERTMANAGER)
PAGERDUTY = Integration(name=IntegrationName.PAGERDUTY)
INCIDENTFLOW = System()
