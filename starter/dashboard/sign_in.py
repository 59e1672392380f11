"""Sign-in and sign-out: an API token from the policy is exchanged for a signed session
cookie; the sign-in form carries a CSRF nonce of its own (there is no session yet)."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from schemas.tokens import find_token
from starter.dashboard.pages import ctx_of, dashboard_of, render, safe_next, set_cookie, user_of
from starter.dashboard.session import LOGIN_CSRF_COOKIE, SESSION_COOKIE, check_csrf

router = APIRouter()


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    dash = dashboard_of(request)
    nonce = secrets.token_urlsafe(16)
    response = render(
        dash,
        request,
        "login.html",
        None,
        csrf=dash.signer.login_csrf(nonce),
        next=safe_next(dash, next),
        error=None,
    )
    set_cookie(dash, request, response, LOGIN_CSRF_COOKIE, nonce, max_age=3600)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    dash = dashboard_of(request)
    ctx = ctx_of(request)
    form = await request.form()
    next_url = safe_next(dash, str(form.get("next") or ""))
    nonce = request.cookies.get(LOGIN_CSRF_COOKIE)

    def again(status: int, error: str) -> Response:
        fresh = secrets.token_urlsafe(16)
        response = render(
            dash,
            request,
            "login.html",
            None,
            status=status,
            csrf=dash.signer.login_csrf(fresh),
            next=next_url,
            error=error,
        )
        set_cookie(dash, request, response, LOGIN_CSRF_COOKIE, fresh, max_age=3600)
        return response

    if not dash.signer.check_login_csrf(nonce, str(form.get("csrf") or "")):
        return again(403, "The sign-in form expired; please try again.")
    client = request.client.host if request.client else "unknown"
    retry = ctx.limiter.take(f"dashboard-login:{client}")
    if retry is not None:
        return again(429, f"Too many sign-in attempts; wait {retry} s.")
    token = find_token(ctx.policy, str(form.get("token") or "").strip())
    if token is None:
        return again(401, "That token is not valid. Paste an API token from the policy.")
    response = RedirectResponse(next_url, status_code=303)
    set_cookie(
        dash,
        request,
        response,
        SESSION_COOKIE,
        dash.signer.issue(token),
        max_age=int(dash.signer.max_age),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=dash.prefix or "/")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    dash = dashboard_of(request)
    form = await request.form()
    user = user_of(dash, request)
    response = RedirectResponse(dash.url("/login"), status_code=303)
    if user is not None and check_csrf(user, str(form.get("csrf") or "")):
        response.delete_cookie(SESSION_COOKIE, path=dash.prefix or "/")
    return response
