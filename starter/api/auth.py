"""Who is calling: bearer tokens for the native API, integration keys for the webhooks.

Tokens live in the policy file as SHA-256 digests and are matched in constant time
(:func:`schemas.tokens.find_token`). ``admin`` implies every other scope. The rate limit is
per credential (token name, or integration key digest) and is checked once the caller is
known, so one noisy client cannot starve the others. No raw token or key is ever logged or
echoed in an error.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from schemas.enums import Scope
from schemas.policy import Service
from schemas.tokens import find_token, hash_token
from schemas.webhook_signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_webhook
from starter.api.context import ApiContext, get_context
from starter.api.errors import ApiError
from starter.api.limits import raw_body

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="an API token from the policy file (scopes: ingest, respond, read, admin)",
)


class Principal(BaseModel):
    """The authenticated caller: its token's name, user and scopes."""

    token: str
    user: str
    scopes: frozenset[Scope]
    #: the token's own requests/min from the policy, if it has one
    rate_limit: int | None = None

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes


def _unauthorized(message: str, error: str | None = None) -> ApiError:
    challenge = 'Bearer realm="incidentflow"'
    if error:
        challenge += f', error="{error}"'
    return ApiError(401, message, headers={"WWW-Authenticate": challenge})


def check_rate(ctx: ApiContext, key: str, override: int | None = None) -> None:
    """429 with Retry-After once the credential spent its requests per minute (the policy's
    ``rate_limit`` of its token or service, else ``INCIDENTFLOW_RATE_LIMIT``; 0 = none)."""
    retry_after = ctx.limiter.take(key, override)
    if retry_after is not None:
        limit = ctx.limiter.per_minute if override is None else override
        raise ApiError(
            429,
            f"rate limit of {limit} requests per minute exceeded",
            headers={"Retry-After": str(retry_after)},
            details={"retry_after_seconds": retry_after},
        )


async def authenticate(
    ctx: Annotated[ApiContext, Depends(get_context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise _unauthorized("missing bearer token (Authorization: Bearer <token>)")
    token = find_token(ctx.policy, credentials.credentials)
    if token is None:
        raise _unauthorized("invalid bearer token", "invalid_token")
    return Principal(
        token=token.name,
        user=token.user,
        scopes=frozenset(token.scopes),
        rate_limit=token.rate_limit,
    )


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """Dependency: an authenticated caller within its rate limit that holds ``scope``."""

    async def dependency(
        ctx: Annotated[ApiContext, Depends(get_context)],
        principal: Annotated[Principal, Depends(authenticate)],
    ) -> Principal:
        check_rate(ctx, f"token:{principal.token}", principal.rate_limit)
        if not principal.allows(scope):
            raise ApiError(
                403,
                f"token {principal.token!r} lacks the {scope.value!r} scope",
                details={"required_scope": scope.value},
            )
        return principal

    dependency.__name__ = f"require_{scope.value}"
    return dependency


def integration_service(ctx: ApiContext, key: str) -> Service | None:
    """The service an integration key belongs to (rate limited per key), or ``None``."""
    digest = hash_token(key).encode("ascii")
    service: Service | None = None
    for candidate in ctx.policy.services:
        for known in candidate.integration_keys:
            # every key is compared, in constant time, like bearer tokens
            if hmac.compare_digest(digest, hash_token(known).encode("ascii")) and service is None:
                service = candidate
    if service is not None:
        check_rate(ctx, f"integration:{hash_token(key)}", service.rate_limit)
    return service


async def verify_inbound_signature(request: Request, service: Service) -> None:
    """Where the service has an ``inbound_secret``, require a valid HMAC over the exact body
    and a timestamp within 5 minutes (a replayed request is refused)."""
    if not service.inbound_secret:
        return
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    # the bytes as sent, even where the body limits replaced NUL or a lone surrogate
    body = raw_body(request.scope) or await request.body()
    if not timestamp or not signature:
        raise ApiError(
            401,
            f"this service requires signed requests: send {TIMESTAMP_HEADER} and "
            f"{SIGNATURE_HEADER} (see docs/webhooks.md)",
            code="unauthorized",
        )
    if not verify_webhook(
        service.inbound_secret, timestamp, body, signature, now=time.time(), tolerance=300
    ):
        raise ApiError(
            401, "invalid signature or timestamp older than 5 minutes", code="unauthorized"
        )


Ingest = Annotated[Principal, Depends(require(Scope.INGEST))]
Respond = Annotated[Principal, Depends(require(Scope.RESPOND))]
Read = Annotated[Principal, Depends(require(Scope.READ))]
