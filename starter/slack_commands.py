"""``/incident`` in Slack: the words a user types, parsed into one :class:`SlashCommand`.

Pure, so the grammar is tested without Slack: ``new <title> [--sev SEV2] [--service x]``,
``ack|mitigate|resolve|note|status [INC-n] [text]`` (the number may be left out in an
incident channel, ``#inc-123-…``), ``list``, ``oncall [schedule]``, ``help``.
"""

from __future__ import annotations

import re
import shlex
from enum import StrEnum

from pydantic import BaseModel

from schemas.enums import Action, Severity
from schemas.slack_messages import number_of_channel


class Verb(StrEnum):
    NEW = "new"
    ACK = "ack"
    MITIGATE = "mitigate"
    RESOLVE = "resolve"
    NOTE = "note"
    STATUS = "status"
    LIST = "list"
    ONCALL = "oncall"
    HELP = "help"


#: the verbs that run a responder action, and which
ACTION_VERBS: dict[Verb, Action] = {
    Verb.ACK: Action.ACKNOWLEDGE,
    Verb.MITIGATE: Action.MITIGATE,
    Verb.RESOLVE: Action.RESOLVE,
    Verb.NOTE: Action.ADD_NOTE,
}
#: the verbs that name an incident
INCIDENT_VERBS = frozenset({*ACTION_VERBS, Verb.STATUS})

HELP = """\
*/incident* — run incidents from Slack
• `/incident new <title> [--sev SEV2] [--service checkout]` open an incident
• `/incident ack|mitigate|resolve INC-12 [note]` act on one
• `/incident note INC-12 <text>` add to its timeline
• `/incident status INC-12` where it stands
• `/incident list` the open incidents
• `/incident oncall [schedule]` who is on call now
• `/incident help` this text
In an incident's own channel (`#inc-12-…`) the number may be left out."""

_NUMBER = re.compile(r"^inc-(\d+)$", re.IGNORECASE)


class CommandError(ValueError):
    """The text is not a command: the message says how to write it."""


class SlashCommand(BaseModel):
    verb: Verb
    #: the incident (``INC-12``), for the verbs that name one
    number: str | None = None
    #: the title (new), the note or resolution (actions), the schedule (oncall)
    text: str = ""
    severity: Severity | None = None
    service: str | None = None


def parse(text: str, channel_name: str = "") -> SlashCommand:
    """``text`` as typed after ``/incident``; ``channel_name`` where it was typed."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise CommandError(f"cannot read the command: {exc}") from None
    if not words:
        return SlashCommand(verb=Verb.HELP)
    head, rest = words[0].lower(), words[1:]
    try:
        verb = Verb(head)
    except ValueError:
        raise CommandError(f"unknown command {head!r}; try `/incident help`") from None
    if verb == Verb.NEW:
        return _new(rest)
    if verb in INCIDENT_VERBS:
        number = None
        if rest and (match := _NUMBER.match(rest[0])):
            number, rest = f"INC-{match.group(1)}", rest[1:]
        number = number or number_of_channel(channel_name)
        if number is None:
            raise CommandError(f"name the incident: `/incident {verb.value} INC-12`")
        note = " ".join(rest).strip()
        if verb == Verb.NOTE and not note:
            raise CommandError("a note needs text: `/incident note INC-12 <text>`")
        return SlashCommand(verb=verb, number=number, text=note)
    return SlashCommand(verb=verb, text=" ".join(rest).strip())


def _new(words: list[str]) -> SlashCommand:
    title: list[str] = []
    severity: Severity | None = None
    service: str | None = None
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("--sev", "--severity", "--service"):
            if i + 1 >= len(words):
                raise CommandError(f"{word} needs a value")
            value = words[i + 1]
            if word == "--service":
                service = value
            else:
                try:
                    severity = Severity(value.upper())
                except ValueError:
                    known = ", ".join(s.value for s in Severity)
                    raise CommandError(f"unknown severity {value!r}; one of {known}") from None
            i += 2
            continue
        title.append(word)
        i += 1
    if not title:
        raise CommandError("a new incident needs a title: `/incident new <title>`")
    return SlashCommand(verb=Verb.NEW, text=" ".join(title), severity=severity, service=service)
