"""Dashboard sessions and CSRF tokens: HMAC-signed, so the cookie never holds the API token.

A session names the policy token it was opened with (its name and a prefix of its hash)
and is re-checked against the policy on every request: removing or rotating a token ends
its sessions. The CSRF token of a session is derived from the session's own nonce, so a
page can only post forms it was served.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

from pydantic import BaseModel, ValidationError

from schemas.enums import Scope
from schemas.policy import ApiToken, Policy

SESSION_COOKIE = "incidentflow_session"
LOGIN_CSRF_COOKIE = "incidentflow_login_csrf"
#: how long a sign-in lasts (seconds)
DEFAULT_MAX_AGE = 12 * 3600


class Session(BaseModel):
    """What the signed cookie carries."""

    token: str  # the policy token's name
    digest: str  # first 16 hex digits of its sha256: a rotated token ends the session
    issued: float
    nonce: str


class SessionUser(BaseModel):
    """The signed-in user as the pages see them."""

    token: str
    user: str
    scopes: frozenset[Scope]
    csrf: str

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    def __init__(self, secret: bytes, *, max_age: float = DEFAULT_MAX_AGE) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must be at least 16 bytes")
        self._key = hashlib.sha256(b"incidentflow-session\0" + secret).digest()
        self.max_age = max_age

    def _mac(self, purpose: str, payload: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}\0{payload}".encode(), "sha256").digest())

    def issue(self, token: ApiToken) -> str:
        session = Session(
            token=token.name,
            digest=token.sha256[:16],
            issued=time.time(),
            nonce=secrets.token_urlsafe(16),
        )
        payload = _b64(session.model_dump_json().encode())
        return f"{payload}.{self._mac('session', payload)}"

    def load(self, cookie: str | None, policy: Policy) -> SessionUser | None:
        """The user of a valid, unexpired session whose token still exists; else ``None``."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac("session", payload)):
            return None
        try:
            session = Session.model_validate(json.loads(_unb64(payload)))
        except (ValueError, ValidationError):
            return None
        if time.time() - session.issued > self.max_age:
            return None
        token = next((t for t in policy.tokens if t.name == session.token), None)
        if token is None or not hmac.compare_digest(token.sha256[:16], session.digest):
            return None
        return SessionUser(
            token=token.name,
            user=token.user,
            scopes=frozenset(token.scopes),
            csrf=self._mac("csrf", session.nonce),
        )

    def login_csrf(self, nonce: str) -> str:
        """The CSRF token of the sign-in form, bound to a nonce kept in its own cookie."""
        return self._mac("login", nonce)

    def check_login_csrf(self, nonce: str | None, presented: str | None) -> bool:
        if not nonce or not presented:
            return False
        return hmac.compare_digest(self.login_csrf(nonce), presented)


def check_csrf(user: SessionUser, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(user.csrf, presented or "")
