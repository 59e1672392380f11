"""Signed acknowledge links: a token that names an incident, the user paged and an expiry.

The notify activity signs one into every page it sends to a user; the dashboard's
``/ack/<token>`` page checks it and acknowledges as that user. HMAC-SHA256 with a server
secret (``INCIDENTFLOW_LINK_SECRET``, the same on workers and API replicas), domain-separated
from every other use of a secret. The token carries a random id, which the acknowledge page
records in PostgreSQL (``ack_link_uses``) so a link acts at most once.

Pure functions: the caller passes the clock and the random id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field, ValidationError

#: how long a page's acknowledge link works unless settings say otherwise
DEFAULT_TTL = timedelta(hours=24)
#: a token is at most this long (a URL path segment; bounded before any decoding)
MAX_TOKEN_LENGTH = 1024
MIN_SECRET_BYTES = 16


class AckClaim(BaseModel):
    """What a valid token says."""

    number: str = Field(min_length=1, max_length=40)
    user: str = Field(min_length=1, max_length=200)
    expires: datetime
    id: str = Field(min_length=8, max_length=64)


class InvalidAckToken(ValueError):
    """Not a token this server signed (garbled, truncated, wrong secret)."""


class ExpiredAckToken(ValueError):
    def __init__(self, claim: AckClaim) -> None:
        super().__init__(f"this acknowledge link expired at {claim.expires:%Y-%m-%d %H:%M} UTC")
        self.claim = claim


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(secret: bytes) -> bytes:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the link secret must be at least {MIN_SECRET_BYTES} bytes")
    return hashlib.sha256(b"incidentflow-ack-link\0" + secret).digest()


def _mac(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(_key(secret), f"ack\0{payload}".encode(), "sha256").digest())


def sign_ack(secret: bytes, claim: AckClaim) -> str:
    """The URL-safe token of ``claim``."""
    body = {
        "n": claim.number,
        "u": claim.user,
        "e": int(claim.expires.timestamp()),
        "i": claim.id,
    }
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_mac(secret, payload)}"


def read_ack(secret: bytes, token: str, *, now: datetime) -> AckClaim:
    """The claim of a token signed with ``secret``.

    Raises :class:`InvalidAckToken` for anything not signed by us, :class:`ExpiredAckToken`
    (which still carries the claim) for a genuine token past its expiry.
    """
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise InvalidAckToken("not an acknowledge link")
    payload, mac = token.split(".")
    if not hmac.compare_digest(mac.encode(), _mac(secret, payload).encode()):
        raise InvalidAckToken("not an acknowledge link of this server")
    try:
        body = json.loads(_unb64(payload))
        claim = AckClaim(
            number=body["n"],
            user=body["u"],
            expires=datetime.fromtimestamp(int(body["e"]), UTC),
            id=body["i"],
        )
    except (ValueError, KeyError, TypeError, ValidationError) as err:
        raise InvalidAckToken("not an acknowledge link") from err
    if now >= claim.expires:
        raise ExpiredAckToken(claim)
    return claim
