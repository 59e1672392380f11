"""The lifecycle transition table: which action is legal from which status, what it writes
and where it leads, and the rules on who acknowledges and who takes command.

The workflow's rules (``schemas.incident_rules``), its Update validators and the
dashboard's buttons all read this table, so what a responder may do is decided in one place.
"""

from dataclasses import dataclass

from schemas.actors import Actor, ActorKind
from schemas.enums import Action, EventKind, Status

OPEN_STATUSES: frozenset[Status] = frozenset(
    {Status.TRIGGERED, Status.ACKNOWLEDGED, Status.INVESTIGATING, Status.MITIGATED}
)


@dataclass(frozen=True)
class Transition:
    """What one action is to the lifecycle."""

    #: the statuses it is legal from
    legal_from: frozenset[Status]
    #: the timeline event it writes
    event: EventKind
    #: the status it leads to; ``None`` keeps the status
    leads_to: Status | None = None


_OPEN_OR_RESOLVED = OPEN_STATUSES | {Status.RESOLVED}

#: the lifecycle: every action, where it is legal, what it writes and where it leads
TRANSITIONS: dict[Action, Transition] = {
    Action.ACKNOWLEDGE: Transition(
        frozenset({Status.TRIGGERED}), EventKind.ACKNOWLEDGED, Status.ACKNOWLEDGED
    ),
    Action.INVESTIGATE: Transition(
        frozenset({Status.TRIGGERED, Status.ACKNOWLEDGED}),
        EventKind.INVESTIGATING,
        Status.INVESTIGATING,
    ),
    Action.MITIGATE: Transition(
        frozenset({Status.TRIGGERED, Status.ACKNOWLEDGED, Status.INVESTIGATING}),
        EventKind.MITIGATED,
        Status.MITIGATED,
    ),
    Action.RESOLVE: Transition(OPEN_STATUSES, EventKind.RESOLVED, Status.RESOLVED),
    Action.CLOSE: Transition(frozenset({Status.RESOLVED}), EventKind.CLOSED, Status.CLOSED),
    Action.CANCEL: Transition(OPEN_STATUSES, EventKind.CANCELLED, Status.CLOSED),
    Action.MERGE_INTO: Transition(OPEN_STATUSES, EventKind.MERGED, Status.CLOSED),
    Action.REOPEN: Transition(frozenset({Status.RESOLVED}), EventKind.REOPENED, Status.TRIGGERED),
    Action.ASSIGN: Transition(_OPEN_OR_RESOLVED, EventKind.ASSIGNED),
    Action.CHANGE_SEVERITY: Transition(OPEN_STATUSES, EventKind.SEVERITY_CHANGED),
    Action.ADD_NOTE: Transition(_OPEN_OR_RESOLVED, EventKind.NOTE_ADDED),
    Action.POST_STATUS_UPDATE: Transition(OPEN_STATUSES, EventKind.STATUS_UPDATE_POSTED),
    Action.ESCALATE: Transition(OPEN_STATUSES, EventKind.ESCALATED),
    # whether the incident is paused decides further (``IncidentRules.check``, ``offered``)
    Action.PAUSE: Transition(OPEN_STATUSES, EventKind.PAUSED),
    Action.RESUME: Transition(OPEN_STATUSES, EventKind.RESUMED),
    # links are facts about the past too: a resolved incident may learn its cause later
    Action.LINK: Transition(_OPEN_OR_RESOLVED, EventKind.LINKED),
    Action.UNLINK: Transition(_OPEN_OR_RESOLVED, EventKind.UNLINKED),
}

#: action -> statuses it is legal from (read off ``TRANSITIONS``)
LEGAL_FROM: dict[Action, frozenset[Status]] = {a: t.legal_from for a, t in TRANSITIONS.items()}

#: action -> status it leads to (actions absent here keep the status)
LEADS_TO: dict[Action, Status] = {
    a: t.leads_to for a, t in TRANSITIONS.items() if t.leads_to is not None
}


#: actions that put hands on the incident: the first one by a person acknowledges it
HANDS_ON: frozenset[Action] = frozenset(
    {Action.ACKNOWLEDGE, Action.INVESTIGATE, Action.MITIGATE, Action.RESOLVE}
)


def acknowledges(action: Action, actor: Actor) -> bool:
    """Whether ``action`` by ``actor`` acknowledges the incident (sets ``acknowledged_at``,
    meets the ack clock, stops escalation) when it is not acknowledged yet.

    A person's hands-on action does. An integration's only when it relays an explicit
    acknowledge: PagerDuty's ``acknowledge`` event is a person acknowledging in the
    PagerDuty-side tool, so it counts, attributed to the integration. An alert clearing or
    a PagerDuty ``resolve`` is the monitored condition going away, not anyone responding:
    it resolves without acknowledging, so MTTA and ack compliance count people only.
    incidentflow itself never acknowledges.
    """
    if action not in HANDS_ON:
        return False
    if actor.kind == ActorKind.PERSON:
        return True
    return actor.kind == ActorKind.INTEGRATION and action == Action.ACKNOWLEDGE


def takes_command(action: Action, actor: Actor) -> bool:
    """Whether ``actor`` becomes commander by ``action`` when the incident has none: the
    first person to put hands on it (also after an integration relayed the acknowledge)."""
    return action in HANDS_ON and actor.kind == ActorKind.PERSON


def is_legal(action: Action, status: Status) -> bool:
    return Status(status) in LEGAL_FROM[Action(action)]


def legal_actions(status: Status) -> list[Action]:
    """Actions legal from ``status``, in the table's order."""
    return [a for a, allowed in LEGAL_FROM.items() if Status(status) in allowed]


def next_status(action: Action, status: Status) -> Status:
    """Status after ``action``; raises ``ValueError`` when the action is illegal."""
    if not is_legal(action, status):
        raise ValueError(f"{action} is not allowed from {status}")
    return LEADS_TO.get(Action(action), Status(status))


def offered(action: Action, paused: bool) -> bool:
    """Whether a surface offers ``action`` (legal by status) to an incident that is (not)
    paused: pause only when running, resume only when paused."""
    if action == Action.PAUSE:
        return not paused
    if action == Action.RESUME:
        return paused
    return True


def rejection_message(number: str, action: Action, status: Status) -> str:
    """The message every surface shows for an illegal transition."""
    allowed = ", ".join(a.value for a in legal_actions(status)) or "none"
    return (
        f"{number} is {Status(status).value}: cannot {Action(action).value}; "
        f"allowed actions: {allowed}"
    )


def handed_over(status: Status, review_workflow_id: str | None) -> bool:
    """Resolved and handed over to its post-incident review: no action on the incident is
    legal any more (the review closes it), whatever ``LEGAL_FROM`` says about resolved."""
    return Status(status) == Status.RESOLVED and review_workflow_id is not None


def review_pending_message(number: str, action: Action, review_workflow_id: str) -> str:
    """Refusal once the incident was handed over to its post-incident review: from then on
    the review decides when the incident closes."""
    return (
        f"{number} is resolved and handed over to its post-incident review "
        f"({review_workflow_id}): cannot {Action(action).value}; it closes when the review "
        "is completed or waived"
    )
