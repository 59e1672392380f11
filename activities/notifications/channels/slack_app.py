"""The Slack app's bot (docs/slack.md): Slack Web API calls through slack_sdk's
``AsyncWebClient``, with Slack's errors classified like every other channel's: rate limits,
server errors and lost connections are transient, the rest permanent.

The bot's token lives in the environment variable the policy's ``slack.bot_token_env``
names; without one, Slack pages go through incoming webhooks (``channels.slack``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from activities.notifications.errors import permanent, transient
from activities.notifications.rendering import RenderedMessage
from schemas.incident import IncidentSnapshot, SlackMessage
from schemas.policy import SlackSettings
from schemas.slack_messages import action_buttons

#: Slack's error codes that a later attempt may not get
_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable"}
)
#: seconds one Web API call may take
TIMEOUT = 10

# slack_sdk logs each request (its headers carry the bot token, ``response_url`` paths are
# credentials) at DEBUG: keep it out of a debug log, as the httpx loggers are.
logging.getLogger("slack_sdk").setLevel(logging.INFO)


def bot_token(slack: SlackSettings | None) -> str | None:
    """The bot token from the environment variable the policy names, if set."""
    return None if slack is None else slack.bot_token()


def web_client(slack: SlackSettings, token: str) -> AsyncWebClient:
    base = slack.api_url if slack.api_url.endswith("/") else slack.api_url + "/"
    return AsyncWebClient(token=token, base_url=base, timeout=TIMEOUT)


async def call(method: str, request: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
    """Await one Web API call; raise ``DeliveryError`` when it did not succeed.

    ``method`` names the call in the reason (never a token or a message text).
    """
    try:
        return await request
    except SlackApiError as exc:
        response = exc.response
        error = str(response.get("error") or f"HTTP {response.status_code}")
        reason = f"Slack {method}: {error}"
        if (
            error in _TRANSIENT_ERRORS
            or response.status_code in (429,)
            or (response.status_code >= 500)
        ):
            retry = response.headers.get("Retry-After") if response.headers else None
            raise transient(reason, retry_after=float(retry) if retry else None) from exc
        raise permanent(reason) from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise transient(f"Slack {method}: {type(exc).__name__}") from exc


def slack_error(exc: BaseException) -> str | None:
    """Slack's error code of a failed call (``name_taken``), else ``None``."""
    cause = exc.__cause__
    if isinstance(cause, SlackApiError):
        return str(cause.response.get("error") or "")
    return None


async def post_message(
    client: AsyncWebClient,
    channel: str,
    message: RenderedMessage,
    incident: IncidentSnapshot,
    link: str,
    buttons: bool = True,
) -> SlackMessage:
    """``chat.postMessage`` the message, a page with its buttons (Acknowledge, Resolve,
    Escalate, Open); ``channel`` is a channel ID or name, or a member ID (a DM from the bot).
    """
    blocks: list[dict[str, Any]] = list(message.slack["blocks"])
    if buttons:
        blocks.append(action_buttons(incident, link))
    response = await call(
        "chat.postMessage",
        client.chat_postMessage(channel=channel, text=message.slack["text"], blocks=blocks),
    )
    return SlackMessage(channel=str(response["channel"]), ts=str(response["ts"]))
