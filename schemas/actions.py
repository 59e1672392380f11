"""Input model of every responder action (one per Update), each with its own type so fields
can be added later without breaking running workflows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from schemas.actors import MONITORING, Actor
from schemas.enums import Action, ComponentStatus, LinkKind, Role, Severity, StatusPhase

#: longest actor name an action accepts
ACTOR_MAX = 200


class ActionInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: who acts: a person (token, dashboard or CLI user) or an integration (PagerDuty)
    actor: Actor
    #: the incident the caller means; a workflow ID is reused by later incidents of the same
    #: alert key, so the workflow rejects an action whose number is not its own
    number: str | None = None

    @field_validator("actor")
    @classmethod
    def _actor_length(cls, actor: Actor) -> Actor:
        if len(actor.name) > ACTOR_MAX:
            raise ValueError(f"actor names have at most {ACTOR_MAX} characters")
        return actor


class AcknowledgeInput(ActionInput):
    note: str | None = None


class InvestigateInput(ActionInput):
    note: str | None = None


class MitigateInput(ActionInput):
    note: str | None = None


class ResolveInput(ActionInput):
    resolution: str | None = None


class CloseInput(ActionInput):
    reason: str | None = None


class CancelInput(ActionInput):
    reason: str = Field(min_length=1, max_length=4000)


class ReopenInput(ActionInput):
    reason: str | None = None


class AssignInput(ActionInput):
    role: Role
    user: str = Field(min_length=1, max_length=200)


class ChangeSeverityInput(ActionInput):
    severity: Severity
    reason: str | None = None


class NoteInput(ActionInput):
    text: str = Field(min_length=1, max_length=65536)


class StatusUpdateInput(ActionInput):
    """A status update: told to the stakeholders; a ``public`` one also goes on the status
    page (services marked ``public``) and to its confirmed subscribers."""

    text: str = Field(min_length=1, max_length=65536)
    public: bool = False
    #: where things stand, as the status page shows it (default: investigating)
    phase: StatusPhase | None = None
    #: overrides the component status the incident's severity implies while it is open
    component_status: ComponentStatus | None = None


class EscalateInput(ActionInput):
    """Manual escalation: to the next level, or straight to a named target (``user:bob``)."""

    target: str | None = None
    reason: str | None = None


class MergeInput(ActionInput):
    into: str = Field(min_length=1, pattern=r"^INC-\d+$")


class PauseInput(ActionInput):
    """Stop the clocks the severity pauses (mitigate and resolve by default, never ack),
    e.g. while waiting on a vendor; ``until`` resumes them by itself."""

    reason: str = Field(min_length=1, max_length=4000)
    until: AwareDatetime | None = Field(
        default=None, description="resume by itself at this instant (RFC 3339 with an offset)"
    )

    @field_validator("until")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("until is out of range") from None


class ResumeInput(ActionInput):
    """Restart the paused clocks with the business time they had left."""

    note: str | None = None


class LinkInput(ActionInput):
    """Relate this incident to another one (related, caused_by, causes, parent_of,
    child_of); the other incident keeps the inverse (a parent's child is its child_of)."""

    kind: LinkKind
    other: str = Field(pattern=r"^INC-[1-9][0-9]{0,17}$", description="the other incident")
    #: set on the Update that records the other side of a link made on ``other``
    inverse: bool = False


class UnlinkInput(ActionInput):
    """Remove a link (and, on the other incident, its inverse)."""

    kind: LinkKind
    other: str = Field(pattern=r"^INC-[1-9][0-9]{0,17}$", description="the other incident")
    inverse: bool = False


class AlertRepeat(BaseModel):
    """Signal payload: the same alert fired again."""

    at: datetime | None = None
    details: dict[str, str] = Field(default_factory=dict)


class AlertClear(BaseModel):
    """Signal payload: the monitoring system says the alert condition is gone."""

    actor: Actor = MONITORING
    at: datetime | None = None


@dataclass(frozen=True)
class ActionSpec:
    """Everything the surfaces need to offer one responder action."""

    action: Action
    #: the incident workflow's Update (``IncidentWorkflow.<update>``)
    update: str
    #: what the Update takes
    input_type: type[ActionInput]
    #: the API's URL segment: ``POST /api/v1/incidents/{number}/<route>``
    route: str
    #: the dashboard's button and the CLI's wording
    label: str
    #: the route's HTTP method (an unlink is ``DELETE`` on the links route)
    method: str = "POST"


#: one row per action, in the lifecycle's order: the client, the API routes, the CLI and the
#: dashboard all read it
ACTION_SPECS: dict[Action, ActionSpec] = {
    spec.action: spec
    for spec in (
        ActionSpec(
            Action.ACKNOWLEDGE, "acknowledge", AcknowledgeInput, "acknowledge", "Acknowledge"
        ),
        ActionSpec(
            Action.INVESTIGATE, "investigate", InvestigateInput, "investigate", "Investigating"
        ),
        ActionSpec(Action.MITIGATE, "mitigate", MitigateInput, "mitigate", "Mitigated"),
        ActionSpec(Action.RESOLVE, "resolve", ResolveInput, "resolve", "Resolve"),
        ActionSpec(Action.CLOSE, "close", CloseInput, "close", "Close"),
        ActionSpec(Action.CANCEL, "cancel", CancelInput, "cancel", "Cancel incident"),
        ActionSpec(Action.REOPEN, "reopen", ReopenInput, "reopen", "Reopen"),
        ActionSpec(Action.ASSIGN, "assign", AssignInput, "assign", "Assign"),
        ActionSpec(
            Action.CHANGE_SEVERITY,
            "change_severity",
            ChangeSeverityInput,
            "severity",
            "Change severity",
        ),
        ActionSpec(Action.ADD_NOTE, "add_note", NoteInput, "notes", "Add note"),
        ActionSpec(
            Action.POST_STATUS_UPDATE,
            "post_status_update",
            StatusUpdateInput,
            "status-updates",
            "Post status update",
        ),
        ActionSpec(Action.ESCALATE, "escalate", EscalateInput, "escalate", "Escalate"),
        ActionSpec(Action.MERGE_INTO, "merge_into", MergeInput, "merge", "Merge as duplicate"),
        ActionSpec(Action.PAUSE, "pause", PauseInput, "pause", "Pause clocks"),
        ActionSpec(Action.RESUME, "resume", ResumeInput, "resume", "Resume clocks"),
        ActionSpec(Action.LINK, "link", LinkInput, "links", "Link incident"),
        ActionSpec(Action.UNLINK, "unlink", UnlinkInput, "links", "Unlink", method="DELETE"),
    )
}
