"""Any Apprise URL (Teams, Discord, Telegram, …) for the long tail.

Apprise is synchronous and swallows errors into a result flag, so it runs in a thread and
its warnings are captured to classify the failure: a connection error, a timeout or an
HTTP 408/429/5xx is transient; anything else is permanent, since we cannot tell a
misconfigured URL from an outage and retrying a misconfiguration forever helps nobody.
The body goes as plain text; Apprise escapes it for services that want HTML, so user
strings cannot inject markup.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading

import apprise

from activities.notifications.errors import permanent, transient
from activities.notifications.rendering import RenderedMessage

_TRANSIENT = re.compile(r"connection error|timed out|timeout|error=(5\d\d|408|429)\b", re.I)


#: LogCapture hooks the global "apprise" logger, so captures must not overlap
_CAPTURE_LOCK = threading.Lock()


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "<no scheme>"


def _send(url: str, message: RenderedMessage) -> None:
    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise permanent(f"invalid or unsupported Apprise URL ({_scheme(url)}://…)")
    with (
        _CAPTURE_LOCK,
        apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured,
    ):
        ok = notifier.notify(
            title=message.subject, body=message.text, body_format=apprise.NotifyFormat.TEXT
        )
        log = captured.getvalue()
    if ok:
        return
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    reason = f"Apprise ({_scheme(url)}) could not deliver"
    if lines:
        reason += f": {lines[-1][:200]}"
    if _TRANSIENT.search(log):
        raise transient(reason)
    raise permanent(reason)


async def send_apprise(url: str, message: RenderedMessage) -> None:
    try:
        await asyncio.to_thread(_send, url, message)
    except (ConnectionError, TimeoutError) as exc:
        raise transient(
            f"Apprise ({_scheme(url)}) connection failed: {type(exc).__name__}"
        ) from exc
