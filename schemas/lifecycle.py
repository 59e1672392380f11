"""The lifecycle transition table: which action is legal from which status, and where it leads.

The workflow's Update validators and the dashboard's buttons both read this table, so
what a responder may do is decided in one place.
"""

from schemas.enums import Action, Status

OPEN_STATUSES: frozenset[Status] = frozenset(
    {Status.TRIGGERED, Status.ACKNOWLEDGED, Status.INVESTIGATING, Status.MITIGATED}
)

#: action -> statuses it is legal from
LEGAL_FROM: dict[Action, frozenset[Status]] = {
    Action.ACKNOWLEDGE: frozenset({Status.TRIGGERED}),
    Action.INVESTIGATE: frozenset({Status.TRIGGERED, Status.ACKNOWLEDGED}),
    Action.MITIGATE: frozenset({Status.TRIGGERED, Status.ACKNOWLEDGED, Status.INVESTIGATING}),
    Action.RESOLVE: OPEN_STATUSES,
    Action.CLOSE: frozenset({Status.RESOLVED}),
    Action.CANCEL: OPEN_STATUSES,
    Action.MERGE_INTO: OPEN_STATUSES,
    Action.REOPEN: frozenset({Status.RESOLVED}),
    Action.ASSIGN: OPEN_STATUSES | {Status.RESOLVED},
    Action.CHANGE_SEVERITY: OPEN_STATUSES,
    Action.ADD_NOTE: OPEN_STATUSES | {Status.RESOLVED},
    Action.POST_STATUS_UPDATE: OPEN_STATUSES,
    Action.ESCALATE: OPEN_STATUSES,
}

#: action -> status it leads to (actions absent here keep the status)
LEADS_TO: dict[Action, Status] = {
    Action.ACKNOWLEDGE: Status.ACKNOWLEDGED,
    Action.INVESTIGATE: Status.INVESTIGATING,
    Action.MITIGATE: Status.MITIGATED,
    Action.RESOLVE: Status.RESOLVED,
    Action.CLOSE: Status.CLOSED,
    Action.CANCEL: Status.CLOSED,
    Action.MERGE_INTO: Status.CLOSED,
    Action.REOPEN: Status.TRIGGERED,
}


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


def rejection_message(number: str, action: Action, status: Status) -> str:
    """The message every surface shows for an illegal transition."""
    allowed = ", ".join(a.value for a in legal_actions(status)) or "none"
    return (
        f"{number} is {Status(status).value}: cannot {Action(action).value}; "
        f"allowed actions: {allowed}"
    )
