"""Links that leave the system (notifications, webhooks, invites) and the app that must answer
them: a live app whose worker signs acknowledge links and pages users by webhook, so a test
can read the very link a responder receives."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import Client

from schemas.policy import Policy
from tests.support_receivers import HttpReceiver
from tests.support_surfaces import Live, live_app

#: shared by the worker (signs) and the app (checks)
LINK_SECRET = "test-link-secret-0123456789abcdef"

_URL = re.compile(r"https?://[^\s\"'<>()|\]\\]+")


def urls_in(text: str, base_url: str) -> set[str]:
    """Every URL in ``text`` that points at ``base_url`` (trailing punctuation trimmed)."""
    return {u.rstrip(".,;:") for u in _URL.findall(text) if u.startswith(base_url)}


def webhook_users(receiver: HttpReceiver) -> Callable[[Policy], Policy]:
    """A policy edit: every user is paged by webhook at ``/hook/<name>`` of ``receiver``."""

    def edit(policy: Policy) -> Policy:
        data = policy.model_dump(mode="json")
        for user in data["users"]:
            user["webhook"] = receiver.url(f"/hook/{user['name']}")
        return Policy.model_validate(data)

    return edit


@asynccontextmanager
async def paging_app(
    temporal_client: Client, database_url: str, task_queue: str, receiver: HttpReceiver
) -> AsyncIterator[Live]:
    """``live_app`` whose pages reach ``receiver`` and carry signed acknowledge links."""
    async with live_app(
        temporal_client,
        database_url,
        task_queue,
        settings_overrides={"incidentflow_link_secret": LINK_SECRET},
        policy_edit=webhook_users(receiver),
    ) as live:
        yield live


async def page_payload(
    receiver: HttpReceiver, user: str, number: str, *, kind: str = "triggered"
) -> dict[str, Any]:
    """The webhook payload of the page ``user`` got for ``number``'s event ``kind``."""

    def matching() -> list[dict[str, Any]]:
        found = []
        for request in receiver.requests(f"/hook/{user}"):
            body = json.loads(request.body)
            if body["incident"]["number"] == number and body["event"]["kind"] == kind:
                found.append(body)
        return found

    from tests.conftest import wait_for

    payloads = await wait_for(matching, timeout=20, message=f"the {kind} page of {number}")
    return payloads[0]
