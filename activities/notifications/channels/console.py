"""Console channel for development: one log line per notification, nothing sent."""

from __future__ import annotations

from temporalio import activity

from activities.notifications.rendering import RenderedMessage


async def send_console(recipient: str, message: RenderedMessage, *, key: str) -> None:
    activity.logger.info("notification for %s [%s]: %s", recipient, key, message.subject)
