"""Slack incoming webhook: POST ``{"text": …, "blocks": […]}`` rendered by ``slack.json.j2``."""

from __future__ import annotations

import json

import httpx

from activities.notifications.channels.http import post
from activities.notifications.rendering import RenderedMessage


async def send_slack(client: httpx.AsyncClient, url: str, message: RenderedMessage) -> None:
    body = json.dumps(message.slack, ensure_ascii=False).encode()
    await post(client, url, content=body, headers={"Content-Type": "application/json"})
