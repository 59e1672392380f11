"""``Idempotency-Key`` on every POST of the native API: a retried request gets the first
answer and changes nothing.

Plain ASGI, inside the body limits (so the body is final) and before FastAPI (so a replay
runs no handler). Per credential (the bearer token's SHA-256) and key, the first request
reserves a row in ``idempotency_keys`` (PostgreSQL, so every API replica agrees); a
concurrent duplicate finds the reservation and is answered 409 with ``Retry-After`` instead
of acting too; the same key with a different request (method, path, query, ``Prefer`` or
body) is 409 as well (it conflicts with what the server holds for the key, as
state-dependent refusals are everywhere in this API).
The first answer is stored when it is final: 2xx, and 4xx other than 401, 403 and 429 (a
credential or throttling problem the retry may not have). Any other answer (5xx: Temporal
or PostgreSQL was down) releases the key, so the retry acts. Keys are kept 24 h; a
reservation whose request died with its process is taken over after 5 minutes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.tokens import hash_token
from starter.api.errors import error_response, unavailable
from starter.api.limits import replaying

log = logging.getLogger("incidentflow.api")

HEADER = "Idempotency-Key"
#: what a key may be: 1-255 visible ASCII characters (a UUID is typical)
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
#: header of a replayed answer
REPLAYED = "Idempotent-Replayed"
KEEP_HOURS = 24
#: minutes after which a reservation without an answer (its process died) is taken over
ABANDONED_MINUTES = 5
#: answers not stored (the key is released): credentials, throttling, server trouble
_NOT_FINAL = frozenset({401, 403, 429})
#: response headers not replayed (the server sets them again)
_SKIP_HEADERS = frozenset({b"content-length", b"date", b"server"})

_RESERVE = f"""
INSERT INTO idempotency_keys (credential, key, fingerprint) VALUES (%s, %s, %s)
ON CONFLICT (credential, key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, status = NULL, headers = NULL, body = NULL,
        created_at = now()
    WHERE idempotency_keys.created_at < now() - interval '{KEEP_HOURS} hours'
       OR (idempotency_keys.status IS NULL
           AND idempotency_keys.created_at < now() - interval '{ABANDONED_MINUTES} minutes')
RETURNING true
"""
_FIRST = (
    "SELECT fingerprint, status, headers, body FROM idempotency_keys "
    "WHERE credential = %s AND key = %s"
)
_STORE = (
    "UPDATE idempotency_keys SET status = %s, headers = %s, body = %s "
    "WHERE credential = %s AND key = %s"
)
_RELEASE = "DELETE FROM idempotency_keys WHERE credential = %s AND key = %s AND status IS NULL"
_EXPIRE = f"""
DELETE FROM idempotency_keys WHERE ctid IN (
    SELECT ctid FROM idempotency_keys
    WHERE created_at < now() - interval '{KEEP_HOURS} hours' LIMIT 100)
"""


def applies(method: str, path: str) -> bool:
    """The native API's POSTs (the integrations have their own dedup keys)."""
    return (
        method == "POST"
        and path.startswith("/api/v1/")
        and not path.startswith("/api/v1/integrations/")
    )


def update_id(headers: Mapping[str, str], token_name: str) -> str | None:
    """The id a responder action's Update carries when the request has a key (per token):
    the incident recognises it when resent, even after the server forgot it (a new run)."""
    key = headers.get(HEADER)
    return f"{token_name}:{key}" if key and _valid(key) else None


def credential_of(headers: Headers) -> str | None:
    """The bearer token's digest: keys are per credential, and no token is stored."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return hash_token(token.strip()) if scheme.lower() == "bearer" and token.strip() else None


def fingerprint(scope: Scope, body: bytes) -> str:
    """What makes two requests the same: method, path, query, body, and ``Prefer`` (it
    changes the answer; and a replay must not skip the route's check of it)."""
    digest = hashlib.sha256()
    prefer = Headers(scope=scope).get("prefer", "")
    for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode(), prefer):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(body)
    return digest.hexdigest()


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, *, pool: Callable[[], Any]) -> None:
        self.app = app
        #: the API's PostgreSQL pool, read per request (it opens after startup)
        self.pool = pool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not applies(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers.get(HEADER)
        credential = credential_of(headers)
        if key is None or credential is None:
            await self.app(scope, receive, send)  # no key; or no credential: a 401 follows
            return
        if not _valid(key):
            message = f"{HEADER} must be 1-255 visible ASCII characters"
            field = f"header.{HEADER}"
            details = [{"loc": ["header", HEADER], "field": field, "message": message}]
            await error_response(scope["path"], 422, message, details=details)(scope, receive, send)
            return
        body, receive = await _buffered(receive)
        pool = self.pool()
        if pool is None:
            await unavailable(scope["path"], f"{HEADER} needs PostgreSQL (DATABASE_URL)")(
                scope, receive, send
            )
            return
        digest = fingerprint(scope, body)
        try:
            async with pool.connection() as conn:
                await conn.execute(_EXPIRE)
                reserved = await (
                    await conn.execute(_RESERVE, (credential, key, digest))
                ).fetchone()
                first = None
                if reserved is None:
                    first = await (await conn.execute(_FIRST, (credential, key))).fetchone()
        except (psycopg.OperationalError, PoolTimeout):
            await unavailable(scope["path"], "the database is unavailable")(scope, receive, send)
            return
        if first is not None:
            await _answer_again(scope, receive, send, key, digest, first)
            return
        await self._first(scope, receive, send, pool, credential, key)

    async def _first(
        self, scope: Scope, receive: Receive, send: Send, pool: Any, credential: str, key: str
    ) -> None:
        status = 500
        kept: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                kept.extend(
                    (k, v) for k, v in message.get("headers", []) if k.lower() not in _SKIP_HEADERS
                )
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            final = status < 500 and status not in _NOT_FINAL
            stored = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in kept]
            try:
                async with pool.connection() as conn:
                    if final:
                        answer = (status, json.dumps(stored), b"".join(chunks), credential, key)
                        await conn.execute(_STORE, answer)
                    else:
                        await conn.execute(_RELEASE, (credential, key))
            except (psycopg.OperationalError, PoolTimeout):
                # the answer went out; a retry finds the reservation and is told to retry
                # until it is taken over (ABANDONED_MINUTES)
                log.warning("could not record the answer for an %s", HEADER)


def _valid(key: str) -> bool:
    return 0 < len(key) <= 255 and all(0x21 <= ord(c) <= 0x7E for c in key)


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body (already bounded by the body limits), and a receive that replays it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    return body, replaying(body, receive)


async def _answer_again(
    scope: Scope, receive: Receive, send: Send, key: str, digest: str, first: Any
) -> None:
    original, status, headers, body = first
    path = scope["path"]
    if original != digest:
        message = f"{HEADER} {key!r} was used for a different request"
        await error_response(path, 409, message)(scope, receive, send)
        return
    if status is None:
        message = f"a request with {HEADER} {key!r} is still being processed; retry"
        response = error_response(path, 409, message, headers={"Retry-After": "1"})
        await response(scope, receive, send)
        return
    replay = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers or []]
    replay.append((REPLAYED.lower().encode(), b"true"))
    replay.append((b"content-length", str(len(body or b"")).encode()))
    await send({"type": "http.response.start", "status": status, "headers": replay})
    await send({"type": "http.response.body", "body": bytes(body or b"")})


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the header to every POST of the OpenAPI document that honours it."""
    for path, operations in schema.get("paths", {}).items():
        post = operations.get("post")
        if post is None or not applies("POST", path):
            continue
        post.setdefault("parameters", []).append(
            {
                "name": HEADER,
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": KEY_PATTERN, "maxLength": 255},
                "description": (
                    f"a retry with the same key (per credential, for {KEEP_HOURS} h) gets the "
                    "first answer and changes nothing; 409 while the first is still running "
                    "or when the key was used for a different request"
                ),
            }
        )
    return schema
