"""POST to an HTTP endpoint and classify the outcome the same way for every HTTP channel:
2xx delivered; 408, 429 and 5xx transient (``Retry-After`` honoured); any other status,
a malformed URL or an unsupported scheme permanent."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from activities.notifications.errors import permanent, transient

#: a receiver asking for more than this is retried at this delay; Temporal's policy rules beyond
MAX_RETRY_AFTER = 3600.0
TIMEOUT = httpx.Timeout(10.0)


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: webhook paths and queries often are the secret (Slack)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    if not parts.scheme or not host:
        return "<invalid url>"
    return f"{parts.scheme}://{host}{port}/…"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


# httpx logs every request URL at INFO; webhook URLs (Slack's above all) are secrets.
for _noisy in ("httpx", "httpcore"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


async def post(
    client: httpx.AsyncClient, url: str, *, content: bytes, headers: dict[str, str]
) -> None:
    """POST ``content``; return on 2xx, raise ``DeliveryError`` otherwise."""
    scheme = urlsplit(url).scheme.lower() if url else ""
    if scheme not in ("http", "https"):
        raise permanent(f"invalid URL {redact_url(url)}: scheme must be http or https")
    try:
        response = await client.post(url, content=content, headers=headers, timeout=TIMEOUT)
    except httpx.UnsupportedProtocol as exc:
        raise permanent(f"invalid URL {redact_url(url)}: {type(exc).__name__}") from exc
    except httpx.InvalidURL as exc:
        raise permanent(f"invalid URL {redact_url(url)}") from exc
    except httpx.TimeoutException as exc:
        raise transient(f"timeout posting to {redact_url(url)}: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        raise transient(f"connection error to {redact_url(url)}: {type(exc).__name__}") from exc
    status = response.status_code
    if 200 <= status < 300:
        return
    snippet = " ".join(response.text[:200].split())
    reason = f"HTTP {status} {response.reason_phrase} from {redact_url(url)}"
    if snippet:
        reason += f": {snippet}"
    if status in (408, 429) or status >= 500:
        raise transient(reason, retry_after=parse_retry_after(response.headers.get("retry-after")))
    raise permanent(reason)
