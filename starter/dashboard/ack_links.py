"""The one-tap acknowledge page behind a page notification's signed link.

``GET /dashboard/ack/<token>`` shows the incident and a single button and changes nothing (a
mail scanner's prefetch is harmless); ``POST`` to the same URL acknowledges as the user the
token names, through ``IncidentClient.act``, as the API does. No sign-in: the token is the
credential, and it is narrow (one incident, one user, one action, an expiry, one use).

Single use: the POST inserts the token's id into ``ack_link_uses`` in the transaction that
acknowledges; a second POST finds the row and is refused (409). If Temporal does not answer,
the transaction rolls back and the link can be tried again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from psycopg.errors import UndefinedTable

from schemas.ack_tokens import AckClaim, ExpiredAckToken, InvalidAckToken, read_ack
from schemas.actions import AcknowledgeInput
from schemas.enums import Action
from schemas.lifecycle import is_legal
from schemas.links import ack_path, incident_path
from starter.api.context import ApiContext
from starter.dashboard.pages import (
    DB_DOWN,
    NUMBER,
    Dashboard,
    ctx_of,
    error_page,
    load_snapshot,
    render,
)
from starter.errors import ActionRejected, IncidentNotFound, InvalidAction, ServiceUnavailable

#: the note the acknowledgement carries on the timeline
VIA_LINK = "acknowledged from the page's link"

_CLAIM = """
INSERT INTO ack_link_uses (token_id, number, username) VALUES (%s, %s, %s)
ON CONFLICT (token_id) DO NOTHING
RETURNING token_id
"""
_USED = "SELECT used_at FROM ack_link_uses WHERE token_id = %s"


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


def _claim(ctx: ApiContext, token: str) -> AckClaim:
    """The token's claim, or :class:`_Refused` saying why it cannot act."""
    secret = ctx.settings.incidentflow_link_secret
    if secret is None:
        raise _Refused(
            503,
            "Acknowledge links are not configured on this server (INCIDENTFLOW_LINK_SECRET); "
            "open the incident and sign in instead.",
        )
    try:
        claim = read_ack(secret.get_secret_value().encode(), token, now=datetime.now(UTC))
    except ExpiredAckToken as err:
        raise _Refused(403, f"{err}. Open {err.claim.number} and sign in instead.") from err
    except InvalidAckToken as err:
        raise _Refused(403, "This acknowledge link is not valid (it may be cut short).") from err
    if not NUMBER.match(claim.number):
        raise _Refused(403, "This acknowledge link is not valid.")
    if ctx.policy.user(claim.user) is None:
        raise _Refused(403, f"{claim.user} is no longer a user in the policy.")
    return claim


async def _used_at(ctx: ApiContext, claim: AckClaim) -> datetime | None:
    async with ctx.db().connection() as conn:
        row = await (await conn.execute(_USED, (claim.id,))).fetchone()
    return row[0] if row else None


def ack_router(dash: Dashboard) -> APIRouter:
    router = APIRouter()

    async def page(
        request: Request, token: str, claim: AckClaim, *, status: int = 200, **values: Any
    ) -> Response:
        ctx = ctx_of(request)
        incident = await load_snapshot(ctx, claim.number)
        used_at = await _used_at(ctx, claim)
        return render(
            dash,
            request,
            "ack.html",
            None,
            status=status,
            claim=claim,
            incident=incident,
            used_at=used_at,
            can_ack=used_at is None and is_legal(Action.ACKNOWLEDGE, incident.status),
            action=dash.url(ack_path(token)),
            incident_link=dash.url(incident_path(claim.number)),
            **values,
        )

    async def guarded(request: Request, token: str, post: bool) -> Response:
        try:
            claim = _claim(ctx_of(request), token)
            if post:
                return await _acknowledge(request, token, claim)
            return await page(request, token, claim, done=request.query_params.get("done"))
        except _Refused as err:
            return error_page(dash, request, None, err.status, err.message)
        except IncidentNotFound as err:
            return error_page(dash, request, None, 404, str(err))
        except UndefinedTable:
            return error_page(
                dash,
                request,
                None,
                503,
                "The database is not migrated for acknowledge links yet (a worker or "
                "`incidentflow migrate` applies the migrations); try again in a moment.",
            )
        except (ServiceUnavailable, TimeoutError, *DB_DOWN):
            return error_page(
                dash,
                request,
                None,
                503,
                "Temporal or PostgreSQL is unreachable right now; the link still works, "
                "try again in a moment.",
            )

    async def _acknowledge(request: Request, token: str, claim: AckClaim) -> Response:
        ctx = ctx_of(request)
        client = ctx.client()
        data = AcknowledgeInput(actor=claim.user, note=VIA_LINK)
        error: str | None = None
        async with ctx.db().connection() as conn, conn.transaction():
            claimed = await (
                await conn.execute(_CLAIM, (claim.id, claim.number, claim.user))
            ).fetchone()
            if claimed is None:
                return await page(
                    request, token, claim, status=409, error="This link was already used."
                )
            try:
                # an unanswered call raises: the transaction rolls back, the link stays usable
                await ctx.temporal_call(client.act(claim.number, Action.ACKNOWLEDGE, data))
            except (ActionRejected, InvalidAction) as err:
                # the link is spent either way: someone else acknowledged, or it moved on
                error = str(err)
        if error is not None:
            return await page(request, token, claim, status=409, error=error)
        return RedirectResponse(dash.url(ack_path(token)) + "?done=1", status_code=303)

    @router.get("/ack/{token}")
    async def ack_form(request: Request, token: str) -> Response:
        return await guarded(request, token, post=False)

    @router.post("/ack/{token}")
    async def ack(request: Request, token: str) -> Response:
        return await guarded(request, token, post=True)

    return router
