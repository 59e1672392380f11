"""The action forms of the incident page: one per legal action, built from the lifecycle
table, and the parsing of a posted form into the action's input model."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from schemas.actions import ACTION_SPECS, ActionInput
from schemas.enums import Action, ComponentStatus, LinkKind, Role, Severity, StatusPhase
from schemas.incident import IncidentSnapshot
from schemas.lifecycle import handed_over, legal_actions, offered
from schemas.policy import Policy


class Field(BaseModel):
    name: str
    label: str
    kind: Literal["text", "textarea", "select", "checkbox"] = "text"
    required: bool = False
    options: list[tuple[str, str]] = []  # (value, label)
    placeholder: str = ""
    pattern: str | None = None


class ActionForm(BaseModel):
    action: Action
    label: str
    #: "primary" moves the lifecycle forward, "danger" ends it early, "" for the rest
    tone: str = ""
    fields: list[Field] = []
    #: forms with a big text field are laid out wide (notes, status updates)
    wide: bool = False


_FORWARD = {
    Action.ACKNOWLEDGE,
    Action.INVESTIGATE,
    Action.MITIGATE,
    Action.RESOLVE,
    Action.CLOSE,
    Action.REOPEN,
}


def _note(name: str = "note", label: str = "Note (optional)") -> Field:
    return Field(name=name, label=label, placeholder="optional")


def _is_public(snapshot: IncidentSnapshot, policy: Policy) -> bool:
    service = policy.service(snapshot.service)
    return service is not None and service.public


def _public_fields() -> list[Field]:
    """The status-update form's switch to the public status page (public services only)."""
    return [
        Field(name="public", label="Public (status page and subscribers)", kind="checkbox"),
        Field(
            name="phase",
            label="Phase",
            kind="select",
            options=[("", "(unchanged)")] + [(p.value, p.value) for p in StatusPhase],
        ),
        Field(
            name="component_status",
            label="Component status",
            kind="select",
            options=[("", "from the severity")]
            + [(c.value, c.value.replace("_", " ")) for c in ComponentStatus],
        ),
    ]


def forms_for(snapshot: IncidentSnapshot, policy: Policy) -> list[ActionForm]:
    """A form for every action legal from the incident's status, none for the others."""
    users = [(u.name, u.full_name or u.name) for u in policy.users]
    targets = [("", "next level of the escalation policy")]
    targets += [(f"user:{u.name}", f"user {u.name}") for u in policy.users]
    targets += [(f"schedule:{s.name}", f"on-call {s.name}") for s in policy.schedules]
    targets += [(f"channel:{c.name}", f"channel {c.name}") for c in policy.channels]
    fields: dict[Action, list[Field]] = {
        Action.ACKNOWLEDGE: [_note()],
        Action.INVESTIGATE: [_note()],
        Action.MITIGATE: [_note()],
        Action.RESOLVE: [_note("resolution", "Resolution (optional)")],
        Action.CLOSE: [_note("reason", "Reason (optional)")],
        Action.CANCEL: [
            Field(name="reason", label="Reason", required=True, placeholder="why it is no incident")
        ],
        Action.REOPEN: [_note("reason", "Reason (optional)")],
        Action.ASSIGN: [
            Field(
                name="role",
                label="Role",
                kind="select",
                required=True,
                options=[(r.value, r.value) for r in Role],
            ),
            Field(name="user", label="User", kind="select", required=True, options=users),
        ],
        Action.CHANGE_SEVERITY: [
            Field(
                name="severity",
                label="Severity",
                kind="select",
                required=True,
                options=[(s.value, s.value) for s in Severity if s != snapshot.severity],
            ),
            _note("reason", "Reason (optional)"),
        ],
        Action.ADD_NOTE: [Field(name="text", label="Note", kind="textarea", required=True)],
        Action.POST_STATUS_UPDATE: [
            Field(
                name="text",
                label="Status update for stakeholders",
                kind="textarea",
                required=True,
            ),
            *(_public_fields() if _is_public(snapshot, policy) else []),
        ],
        Action.ESCALATE: [
            Field(name="target", label="To", kind="select", options=targets),
            _note("reason", "Reason (optional)"),
        ],
        Action.MERGE_INTO: [
            Field(
                name="into",
                label="Duplicate of",
                required=True,
                placeholder="INC-123",
                pattern=r"INC-\d+",
            )
        ],
        Action.PAUSE: [
            Field(
                name="reason", label="Reason", required=True, placeholder="waiting on the vendor"
            ),
            Field(
                name="until",
                label="Resume at (optional)",
                placeholder="2026-12-28T09:00+01:00",
                pattern=r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)",
            ),
        ],
        Action.RESUME: [_note()],
        Action.LINK: [
            Field(
                name="kind",
                label="This incident is",
                kind="select",
                required=True,
                options=[(k.value, k.value.replace("_", " ")) for k in LinkKind],
            ),
            Field(
                name="other",
                label="Incident",
                required=True,
                placeholder="INC-123",
                pattern=r"INC-\d+",
            ),
        ],
    }
    out = []
    # after the hand-over to its review nothing is legal: the review closes the incident
    handed = handed_over(snapshot.status, snapshot.review_workflow_id)
    paused = snapshot.paused is not None
    for action in [] if handed else legal_actions(snapshot.status):
        if not offered(action, paused) or action == Action.UNLINK:
            continue  # each link has its own Unlink button (_links.html)
        tone = "primary" if action in _FORWARD else ""
        if action in (Action.CANCEL, Action.MERGE_INTO):
            tone = "danger"
        out.append(
            ActionForm(
                action=action,
                label=ACTION_SPECS[action].label,
                tone=tone,
                fields=fields[action],
                wide=action in (Action.ADD_NOTE, Action.POST_STATUS_UPDATE),
            )
        )
    return out


def parse_action(action: Action, form: dict[str, Any], actor: str) -> ActionInput:
    """The action's input model from posted fields; blank optional fields are left out.

    Raises ``pydantic.ValidationError`` for missing or malformed fields.
    """
    input_type = ACTION_SPECS[action].input_type
    allowed = set(input_type.model_fields) - {"actor", "number", "inverse"}
    values = {
        k: v.strip() if isinstance(v, str) and k not in ("text",) else v
        for k, v in form.items()
        if k in allowed
    }
    values = {k: v for k, v in values.items() if v not in ("", None)}
    return input_type.model_validate({**values, "actor": actor})
