"""Generic JSON webhook, signed with HMAC-SHA256 over ``"<timestamp>." + body``
(``docs/webhooks.md``). The delivery key rides along so a receiver can drop duplicates."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from activities.notifications.channels.http import post
from activities.notifications.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_webhook

DELIVERY_HEADER = "X-Incidentflow-Delivery"


async def send_webhook(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    *,
    key: str,
    secret: str | None,
) -> None:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        DELIVERY_HEADER: key,
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign_webhook(secret, timestamp, body)
    await post(client, url, content=body, headers=headers)
