"""The lifecycle transition table against a hand-written copy of the design's diagram:
every (action, status) pair is checked, so each legal and each illegal transition is."""

import itertools

import pytest

from schemas.enums import Action, Status
from schemas.lifecycle import (
    OPEN_STATUSES,
    is_legal,
    legal_actions,
    next_status,
    rejection_message,
)

T, A, INV, M, R, C = (
    Status.TRIGGERED,
    Status.ACKNOWLEDGED,
    Status.INVESTIGATING,
    Status.MITIGATED,
    Status.RESOLVED,
    Status.CLOSED,
)
OPEN = (T, A, INV, M)

#: (action, from) -> to; everything absent is illegal. Written from DESIGN.md, by hand.
LEGAL: dict[tuple[Action, Status], Status] = {
    (Action.ACKNOWLEDGE, T): A,
    (Action.INVESTIGATE, T): INV,
    (Action.INVESTIGATE, A): INV,
    (Action.MITIGATE, T): M,
    (Action.MITIGATE, A): M,
    (Action.MITIGATE, INV): M,
    **{(Action.RESOLVE, s): R for s in OPEN},
    (Action.CLOSE, R): C,
    **{(Action.CANCEL, s): C for s in OPEN},
    **{(Action.MERGE_INTO, s): C for s in OPEN},
    (Action.REOPEN, R): T,
    # actions that keep the status
    **{(Action.ASSIGN, s): s for s in (*OPEN, R)},
    **{(Action.ADD_NOTE, s): s for s in (*OPEN, R)},
    **{(Action.CHANGE_SEVERITY, s): s for s in OPEN},
    **{(Action.POST_STATUS_UPDATE, s): s for s in OPEN},
    **{(Action.ESCALATE, s): s for s in OPEN},
    # whether the incident is paused decides further (IncidentRules.check)
    **{(Action.PAUSE, s): s for s in OPEN},
    **{(Action.RESUME, s): s for s in OPEN},
    # a link can still be drawn (or removed) while a resolved incident awaits its close
    **{(Action.LINK, s): s for s in (*OPEN, R)},
    **{(Action.UNLINK, s): s for s in (*OPEN, R)},
}

ALL_PAIRS = list(itertools.product(Action, Status))


def _id(pair: tuple[Action, Status]) -> str:
    return f"{pair[0].value}-from-{pair[1].value}"


@pytest.mark.parametrize("pair", [p for p in ALL_PAIRS if p in LEGAL], ids=_id)
def test_legal_transition(pair: tuple[Action, Status]) -> None:
    action, status = pair
    assert is_legal(action, status)
    assert next_status(action, status) is LEGAL[pair]
    assert action in legal_actions(status)


@pytest.mark.parametrize("pair", [p for p in ALL_PAIRS if p not in LEGAL], ids=_id)
def test_illegal_transition(pair: tuple[Action, Status]) -> None:
    action, status = pair
    assert not is_legal(action, status)
    assert action not in legal_actions(status)
    with pytest.raises(ValueError, match="not allowed"):
        next_status(action, status)


def test_nothing_is_legal_once_closed() -> None:
    assert legal_actions(C) == []
    assert rejection_message("INC-9", Action.REOPEN, C) == (
        "INC-9 is closed: cannot reopen; allowed actions: none"
    )


def test_rejection_message_names_incident_status_and_allowed_actions() -> None:
    assert rejection_message("INC-7", Action.ACKNOWLEDGE, R) == (
        "INC-7 is resolved: cannot acknowledge; allowed actions: close, reopen, assign, add_note, "
        "link, unlink"
    )
    message = rejection_message("INC-12", Action.INVESTIGATE, M)
    assert message.startswith("INC-12 is mitigated: cannot investigate; allowed actions: ")
    allowed = message.split("allowed actions: ")[1].split(", ")
    assert allowed == [a.value for a in legal_actions(M)]
    assert "resolve" in allowed and "investigate" not in allowed


def test_open_statuses() -> None:
    assert set(OPEN) == OPEN_STATUSES


def test_a_whole_life() -> None:
    """Triggered to closed along the main path, with a reopen on the way."""
    status = T
    path = [
        Action.ACKNOWLEDGE,
        Action.INVESTIGATE,
        Action.MITIGATE,
        Action.RESOLVE,
        Action.REOPEN,
        Action.RESOLVE,
        Action.CLOSE,
    ]
    seen = [status]
    for action in path:
        status = next_status(action, status)
        seen.append(status)
    assert seen == [T, A, INV, M, R, T, R, C]
