"""What incidentflow says in Slack, as Block Kit data: the page's buttons, the message that
stays current, the incident channel's name, summary and timeline lines. Pure functions, so
the worker (which posts and updates) and the API (which answers button presses and
``/incident``) build the same blocks and read the same action IDs.
"""

from __future__ import annotations

import re
from typing import Any

from schemas.actions import ACTION_SPECS
from schemas.enums import Action, Role, Status
from schemas.incident import IncidentSnapshot, TimelineEvent
from schemas.lifecycle import is_legal
from schemas.policy import Policy

#: the actions a page offers as buttons, in order; their ``action_id`` is the action's value
BUTTON_ACTIONS: tuple[Action, ...] = (Action.ACKNOWLEDGE, Action.RESOLVE, Action.ESCALATE)
#: the ``action_id`` of the Open button (a link: Slack still sends an interaction for it)
OPEN_ACTION_ID = "open"
#: the ``block_id`` of the buttons' block
ACTIONS_BLOCK_ID = "incidentflow_actions"
#: longest channel name Slack accepts
CHANNEL_NAME_MAX = 80
#: characters of the title kept in a channel's name
CHANNEL_TITLE_MAX = 40
_CHANNEL_NUMBER = re.compile(r"^inc-(\d+)(?:-|$)")


def escape(text: object) -> str:
    """Escape the three characters Slack mrkdwn treats as control characters."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(value: object, length: int) -> str:
    """At most ``length`` characters, an ellipsis marking a cut (Slack's field limits)."""
    text = str(value)
    return text if len(text) <= length else text[: length - 1] + "…"


def action_buttons(incident: IncidentSnapshot, link: str) -> dict[str, Any]:
    """The actions block: a button per action legal in the incident's status, then Open."""
    elements: list[dict[str, Any]] = []
    for action in BUTTON_ACTIONS:
        if not is_legal(action, incident.status):
            continue
        button: dict[str, Any] = {
            "type": "button",
            "action_id": action.value,
            "text": {"type": "plain_text", "text": ACTION_SPECS[action].label},
            "value": incident.number,
        }
        if action == Action.ACKNOWLEDGE:
            button["style"] = "primary"
        elements.append(button)
    elements.append(
        {
            "type": "button",
            "action_id": OPEN_ACTION_ID,
            "text": {"type": "plain_text", "text": f"Open {incident.number}"},
            "url": link,
        }
    )
    return {"type": "actions", "block_id": ACTIONS_BLOCK_ID, "elements": elements}


def _fields(incident: IncidentSnapshot) -> list[dict[str, str]]:
    fields = [
        f"*Status*\n{incident.status.value}",
        f"*Severity*\n{incident.severity.value} ({incident.priority.value})",
        f"*Service*\n{escape(incident.service)}",
        f"*Escalation level*\n{incident.escalation.level}",
    ]
    commander = incident.responders.get(Role.COMMANDER)
    if commander:
        fields.append(f"*Commander*\n{escape(commander)}")
    return [{"type": "mrkdwn", "text": text} for text in fields]


def _drill(incident: IncidentSnapshot) -> str:
    return "DRILL " if incident.drill else ""


def opens_channel(policy: Policy, incident: IncidentSnapshot) -> bool:
    """Whether the incident may have its own Slack channel: not a drill whose pages go to the
    console (``drills.page: console``, docs/drills.md): a game day wakes nobody."""
    return not (incident.drill and policy.drills.page == "console")


def status_blocks(incident: IncidentSnapshot, link: str) -> list[dict[str, Any]]:
    """The page as it stands now: what ``chat.update`` writes on every change of status,
    level or commander; the buttons follow what is legal."""
    title = f"{_drill(incident)}{incident.number} {incident.status.value}: {incident.title}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": truncate(title, 150)}},
        {"type": "section", "fields": _fields(incident)},
    ]
    if incident.status != Status.CLOSED:
        blocks.append(action_buttons(incident, link))
    else:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"<{link}|Open {incident.number}>"}],
            }
        )
    return blocks


def status_text(incident: IncidentSnapshot) -> str:
    """The notification text of a message (what Slack shows where blocks are not)."""
    return escape(
        f"{_drill(incident)}[{incident.severity.value}] {incident.number} "
        f"{incident.status.value}: {incident.title}"
    )


def channel_name(number: str, title: str) -> str:
    """``inc-123-short-title``: lower case, dashes, at most 80 characters."""
    digits = number.removeprefix("INC-")
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:CHANNEL_TITLE_MAX].strip("-")
    name = f"inc-{digits}-{slug}" if slug else f"inc-{digits}"
    return name[:CHANNEL_NAME_MAX]


def number_of_channel(name: str) -> str | None:
    """The incident an incident channel belongs to (``inc-123-…`` → ``INC-123``)."""
    match = _CHANNEL_NUMBER.match(name)
    return f"INC-{match.group(1)}" if match else None


def timeline_text(event: TimelineEvent) -> str:
    """One timeline event as a line in the incident channel."""
    kind = str(event.kind).replace("_", " ")
    text = f"*{escape(kind)}* by {escape(event.actor)}"
    detail = next(
        (
            event.details[key]
            for key in ("text", "note", "resolution", "reason", "title")
            if event.details.get(key)
        ),
        None,
    )
    if detail:
        text += f": {escape(detail)}"
    return truncate(text, 3000)
