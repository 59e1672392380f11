"""Limits that protect the API before a handler runs: body size, body shape, request rate.

:class:`BodyLimitMiddleware` is plain ASGI so it sees the body before FastAPI parses it. It
answers 413 from ``Content-Length`` alone when that is too large, and otherwise reads the
body (chunked uploads included) only up to the limit. A body that is not strict UTF-8 JSON
(NaN, Infinity, an out-of-range number), or is nested deeper than any real payload (which
could exhaust the recursion of later encoders), is refused with 400 here, so no handler ever
sees it; a non-JSON content type gets 415. NUL and lone surrogates, which JSON allows but
PostgreSQL and UTF-8 encoders refuse far downstream (in a worker's retry loop), are replaced
by U+FFFD in every string and key, so the request is accepted as the OpenAPI document says
(an alert is not dropped for one odd character); the sender's exact bytes stay available
for its signature (:func:`raw_body`).
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.settings import DEFAULT_RATE_LIMIT
from starter.api.errors import error_response

DEFAULT_MAX_BODY_BYTES = 512 * 1024
DEFAULT_MAX_JSON_DEPTH = 32

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: routes that take a form body (Slack posts ``application/x-www-form-urlencoded`` and signs
#: its exact bytes); only the size limit applies to them, their handlers parse and check
FORM_PATH_PREFIXES = ("/api/v1/integrations/slack/",)


def is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def is_form_media_type(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/x-www-form-urlencoded"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def parse_json(body: bytes) -> Any:
    """Strict JSON: UTF-8 only, finite numbers, no NaN/Infinity. ``ValueError`` otherwise."""
    try:
        text = body.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc


#: characters no string may carry: PostgreSQL text/jsonb cannot store NUL, and a lone
#: surrogate cannot be encoded as UTF-8 by anything downstream
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"
#: where the middleware keeps the body as sent when it had to replace characters
_RAW_BODY_KEY = "incidentflow.raw_body"


def storable(value: Any) -> tuple[Any, bool]:
    """``value`` with NUL and lone surrogates replaced in every string and key, and whether
    anything was replaced (only then is a copy made). Called on a body already within the
    depth limit."""
    if isinstance(value, str):
        fixed = _UNSTORABLE.sub(REPLACEMENT, value)
        return fixed, fixed != value
    if isinstance(value, list):
        items = [storable(item) for item in value]
        if any(changed for _, changed in items):
            return [item for item, _ in items], True
        return value, False
    if isinstance(value, dict):
        pairs = [(storable(k), storable(v)) for k, v in value.items()]
        if any(kc or vc for (_, kc), (_, vc) in pairs):
            return {k: v for (k, _), (v, _) in pairs}, True
        return value, False
    return value, False


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app ``body`` (read already) in one message, then defers to
    ``receive`` (a disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def raw_body(scope: Scope) -> bytes | None:
    """The body exactly as sent, when the middleware replaced characters in it."""
    raw = scope.get(_RAW_BODY_KEY)
    return raw if isinstance(raw, bytes) else None


def json_problem(value: Any, max_depth: int) -> tuple[int, str, str] | None:
    """Why a parsed body must be refused, as (status, code, message); ``None`` if fine.

    Iterative, so a deep document cannot exhaust the recursion limit here.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[Any] = [*item.keys(), *item.values()]
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return 400, "invalid_json", f"request body nests deeper than {max_depth} levels"
        stack.extend((c, depth + 1) for c in children)
    return None


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_depth: int = DEFAULT_MAX_JSON_DEPTH,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await self._reject(scope, receive, send, 400, "invalid Content-Length")
                return
            if int(declared) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        form = scope["path"].startswith(FORM_PATH_PREFIXES) and is_form_media_type(
            headers.get("content-type")
        )
        if body and not form:
            if not is_json_media_type(headers.get("content-type")):
                await self._reject(
                    scope, receive, send, 415, "request body must be application/json"
                )
                return
            try:
                value = parse_json(body)
            except ValueError:
                await self._reject(
                    scope, receive, send, 400, "request body is not valid JSON", "invalid_json"
                )
                return
            problem = json_problem(value, self.max_depth)
            if problem is not None:
                status, code, text = problem
                await self._reject(scope, receive, send, status, text, code)
                return
            value, replaced = storable(value)
            if replaced:
                scope[_RAW_BODY_KEY] = body
                body = json.dumps(value, ensure_ascii=False).encode("utf-8")
                scope["headers"] = [
                    (k, str(len(body)).encode() if k.lower() == b"content-length" else v)
                    for k, v in scope["headers"]
                ]
        await self.app(scope, replaying(body, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._reject(
            scope,
            receive,
            send,
            413,
            f"request body is larger than {self.max_bytes} bytes",
            details={"max_bytes": self.max_bytes},
        )

    async def _reject(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        message: str,
        code: str | None = None,
        details: Any = None,
    ) -> None:
        response = error_response(
            scope["path"],
            status,
            message,
            code=code,
            details=details,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


class RateLimiter:
    """Token bucket per credential: ``per_minute`` requests (a burst of as many), refilled
    continuously; each credential may have its own rate (the policy's overrides), read at
    every request so a policy reload applies at once.

    In memory, so the limit holds per API replica; that bounds one noisy client without a
    shared store.
    """

    def __init__(self, per_minute: int = DEFAULT_RATE_LIMIT) -> None:
        #: the default rate (``INCIDENTFLOW_RATE_LIMIT``); 0 = unlimited
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, per_minute: int | None = None) -> int | None:
        """Spend one request at ``per_minute`` (default: the limiter's); ``None`` when
        allowed, else seconds to wait (Retry-After)."""
        limit = self.per_minute if per_minute is None else per_minute
        if limit <= 0:
            return None
        capacity, rate = float(limit), limit / 60.0
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / rate))
