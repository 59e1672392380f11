"""What every request from Slack goes through before it may change anything: the signature
(``X-Slack-Signature`` over ``v0:<timestamp>:<body>`` with the app's signing secret, checked
by slack_sdk's ``SignatureVerifier``), the timestamp (at most 5 minutes old), a replay guard
(a signature is accepted once: remembered by the process and, with a database, in
``slack_request_replays`` for every replica), the mapping of the Slack user to a policy
user, and the answers sent afterwards through the request's ``response_url``.

Slack wants an answer within 3 seconds: handlers acknowledge at once and do the work in a
task of :class:`SlackInbound`, which then answers through ``response_url``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

import psycopg
from fastapi import Request
from psycopg_pool import AsyncConnectionPool
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook.async_client import AsyncWebhookClient

from schemas.actors import Person
from schemas.policy import Policy
from starter.api.errors import ApiError

log = logging.getLogger("incidentflow.api.slack")
# slack_sdk logs each request at DEBUG; a ``response_url`` path is a credential
logging.getLogger("slack_sdk").setLevel(logging.INFO)

#: how old a request may be (Slack's own advice, and ``SignatureVerifier``'s window)
MAX_AGE_SECONDS = 5 * 60
SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
#: seconds an answer through ``response_url`` may take
RESPONSE_TIMEOUT = 10


_FORGET = "DELETE FROM slack_request_replays WHERE expires_at < now()"
_REMEMBER = """
INSERT INTO slack_request_replays (signature, expires_at) VALUES (%s, to_timestamp(%s))
ON CONFLICT (signature) DO NOTHING
RETURNING signature
"""


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": 'Slack realm="incidentflow"'})


class SlackInbound:
    """Per app: the signatures already accepted (until they are too old to pass anyway) and
    the background work started for requests already acknowledged."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def verify(
        self,
        policy: Policy,
        request: Request,
        body: bytes,
        pool: AsyncConnectionPool[psycopg.AsyncConnection] | None,
    ) -> None:
        """Raise 401 unless ``body`` is signed by the app's secret, recent and new."""
        slack = policy.slack
        secret = slack.signing_secret() if slack is not None else None
        if secret is None:
            raise _unauthorized("Slack is not configured: no signing secret (policy slack:)")
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        signature = request.headers.get(SIGNATURE_HEADER)
        if not timestamp or not timestamp.isdigit() or not signature:
            raise _unauthorized(f"missing or malformed {TIMESTAMP_HEADER} / {SIGNATURE_HEADER}")
        now = time.time()
        if abs(now - int(timestamp)) > MAX_AGE_SECONDS:
            raise _unauthorized("request timestamp is more than 5 minutes away")
        if not SignatureVerifier(secret).is_valid(body, timestamp, signature):
            raise _unauthorized("invalid Slack signature")
        self._forget(now)
        expires = int(timestamp) + MAX_AGE_SECONDS
        if signature in self._seen or not await _first_use(pool, signature, expires):
            raise _unauthorized("request replayed: this signature was already accepted")
        self._seen[signature] = expires

    def _forget(self, now: float) -> None:
        for signature in [s for s, until in self._seen.items() if until < now]:
            del self._seen[signature]

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` after the answer went out; kept referenced until it ends."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the work still running (the app is stopping)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def _first_use(
    pool: AsyncConnectionPool[psycopg.AsyncConnection] | None, signature: str, expires: int
) -> bool:
    """Record ``signature`` for every replica; ``False`` when one had already taken it."""
    if pool is None:
        return True
    async with pool.connection() as conn:
        await conn.execute(_FORGET)
        cursor = await conn.execute(_REMEMBER, (signature, expires))
        return await cursor.fetchone() is not None


def person(policy: Policy, slack_user_id: str) -> Person | None:
    """The policy user with this Slack member ID (``users[].slack_id``)."""
    user = policy.user_by_slack_id(slack_user_id)
    return Person(name=user.name) if user is not None else None


def unknown_user_text(slack_user_id: str) -> str:
    return (
        f"Slack user {slack_user_id} is not in incidentflow's policy: ask an admin to set "
        "your `slack_id` under `users`. Nothing was changed."
    )


async def respond(
    response_url: str,
    text: str,
    *,
    in_channel: bool = False,
    blocks: list[dict[str, Any]] | None = None,
) -> None:
    """Answer through ``response_url``: ephemeral (only the user sees it) unless
    ``in_channel``; never replacing the message the button was on."""
    client = AsyncWebhookClient(response_url, timeout=RESPONSE_TIMEOUT)
    try:
        await client.send(
            text=text,
            blocks=blocks,
            response_type="in_channel" if in_channel else "ephemeral",
            replace_original=False,
        )
    except Exception as exc:  # the user misses an answer; nothing else depends on it
        log.warning("Slack response_url answer failed: %s", type(exc).__name__)
