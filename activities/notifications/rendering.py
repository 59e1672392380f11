"""Render one notification in every format the channels need, from jinja2 templates.

Each event kind has a small template under ``templates/kinds/`` that defines two macros,
``headline`` (a verb phrase: "triggered", "escalated to level 2") and ``body`` (a few plain
text lines). One layout per format (``subject.txt.j2``, ``text.txt.j2``, ``email.html.j2``,
``markdown.md.j2``, ``slack.json.j2``) places them among the incident's facts, so a new event
kind needs one small file and a kind without one falls back to ``kinds/_generic.j2``.

A directory given in settings is searched first, so any file can be overridden by name.
Links come from ``schemas.links`` (the caller passes them in as ``link`` and ``ack_link``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)
from pydantic import BaseModel

from schemas.durations import format_duration
from schemas.incident import IncidentSnapshot, TimelineEvent
from schemas.slack_messages import escape, truncate

BUILTIN_TEMPLATES = Path(__file__).parent / "templates"
GENERIC_KIND = "kinds/_generic.j2"
FORMATS = ("subject.txt.j2", "text.txt.j2", "email.html.j2", "markdown.md.j2", "slack.json.j2")


class RenderedMessage(BaseModel):
    """One notification, rendered for every channel."""

    subject: str
    text: str
    html: str
    markdown: str
    slack: dict[str, Any]


def _when(value: Any) -> str:
    """A datetime (or ISO string) as ``2026-03-01 14:03 UTC``; anything else unchanged."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def _duration(value: Any) -> str:
    """Seconds (or a timedelta) as ``1h30m``."""
    if isinstance(value, timedelta):
        return format_duration(value)
    try:
        return format_duration(timedelta(seconds=float(value)))
    except (TypeError, ValueError):
        return str(value)


def _pick(mapping: dict[str, Any], *keys: str) -> Any:
    """The first non-empty value of ``keys`` in ``mapping``, else ``None``."""
    for key in keys:
        value = mapping.get(key)
        if value not in (None, "", [], {}):
            return value
    return None


class Renderer:
    """Renders notifications; ``override_dir`` templates take precedence by file name."""

    def __init__(self, override_dir: Path | None = None) -> None:
        loaders = [FileSystemLoader(str(BUILTIN_TEMPLATES))]
        if override_dir is not None:
            loaders.insert(0, FileSystemLoader(str(override_dir)))
        self.env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(
                enabled_extensions=("html", "html.j2"), default_for_string=False, default=False
            ),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            when=_when, duration=_duration, slack_escape=escape, truncate_to=truncate
        )
        self.env.globals["pick"] = _pick

    def kind_template(self, kind: str) -> str:
        """``kinds/<kind>.j2`` when it exists (override or built-in), else the generic one."""
        name = f"kinds/{kind}.j2"
        try:
            self.env.get_template(name)
        except TemplateNotFound:
            return GENERIC_KIND
        return name

    def render(
        self,
        incident: IncidentSnapshot,
        event: TimelineEvent,
        *,
        recipient: str,
        link: str,
        ack_link: str | None = None,
        seen_before: str | None = None,
    ) -> RenderedMessage:
        """``link`` opens the incident's page; ``ack_link``, when given (pages to a user),
        acknowledges as that user in one tap (``schemas.ack_tokens``); ``seen_before`` is
        the most similar resolved past incident in one line (``schemas.similarity``)."""
        context: dict[str, Any] = {
            "incident": incident,
            "event": event,
            "details": event.details,
            "kind": str(event.kind),
            "recipient": recipient,
            "link": link,
            "ack_link": ack_link,
            "seen_before": seen_before,
        }
        module = self.env.get_template(self.kind_template(str(event.kind))).make_module(context)
        macros: Any = module  # the kind template's macros are attributes of its module
        context["headline"] = " ".join(str(macros.headline()).split())
        context["body"] = str(macros.body()).strip()
        rendered = {name: self.env.get_template(name).render(context).strip() for name in FORMATS}
        slack = json.loads(rendered["slack.json.j2"])
        if not isinstance(slack, dict) or not isinstance(slack.get("blocks"), list):
            raise ValueError("slack.json.j2 must render an object with a list of blocks")
        return RenderedMessage(
            # one line: a newline in a title must not become a header injection
            subject=" ".join(rendered["subject.txt.j2"].split()),
            text=rendered["text.txt.j2"] + "\n",
            html=rendered["email.html.j2"] + "\n",
            markdown=rendered["markdown.md.j2"] + "\n",
            slack=slack,
        )
