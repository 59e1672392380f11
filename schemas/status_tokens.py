"""Signed links of status-page subscriptions: confirm an address, or unsubscribe it.

The same construction as the acknowledge links (``schemas.ack_tokens``: HMAC-SHA256 with
``INCIDENTFLOW_LINK_SECRET``) under its own domain, so no token of one kind passes for the
other. A token names the subscriber by the hash of its address (``workflow_ids.subscriber_id``),
never the address. Confirm links expire; unsubscribe links do not (every mail carries one,
and an old mail must still let its reader leave).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from schemas.ack_tokens import MAX_TOKEN_LENGTH, MIN_SECRET_BYTES, _b64, _unb64

#: how long a confirmation link works
CONFIRM_TTL = timedelta(days=2)

Purpose = Literal["confirm", "unsubscribe"]


class SubscriptionClaim(BaseModel):
    purpose: Purpose
    subscriber: str = Field(pattern=r"^[0-9a-f]{64}$")
    #: ``None``: never expires (unsubscribe links)
    expires: datetime | None = None


class InvalidSubscriptionToken(ValueError):
    """Not a subscription link this server signed for this purpose, or an expired one."""


def _mac(secret: bytes, payload: str) -> str:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the link secret must be at least {MIN_SECRET_BYTES} bytes")
    key = hashlib.sha256(b"incidentflow-status-subscription\0" + secret).digest()
    return _b64(hmac.new(key, f"sub\0{payload}".encode(), "sha256").digest())


def sign_subscription(secret: bytes, claim: SubscriptionClaim) -> str:
    body: dict[str, object] = {"p": claim.purpose, "s": claim.subscriber}
    if claim.expires is not None:
        body["e"] = int(claim.expires.timestamp())
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_mac(secret, payload)}"


def read_subscription(
    secret: bytes, token: str, *, purpose: Purpose, now: datetime
) -> SubscriptionClaim:
    """The claim of a valid, unexpired token for ``purpose``; else
    :class:`InvalidSubscriptionToken`."""
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise InvalidSubscriptionToken("not a subscription link")
    payload, mac = token.split(".")
    if not hmac.compare_digest(mac.encode(), _mac(secret, payload).encode()):
        raise InvalidSubscriptionToken("not a subscription link of this server")
    try:
        body = json.loads(_unb64(payload))
        expires = body.get("e")
        claim = SubscriptionClaim(
            purpose=body["p"],
            subscriber=body["s"],
            expires=None if expires is None else datetime.fromtimestamp(int(expires), UTC),
        )
    except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as err:
        raise InvalidSubscriptionToken("not a subscription link") from err
    if claim.purpose != purpose:
        raise InvalidSubscriptionToken(f"not a link to {purpose}")
    if claim.expires is not None and now >= claim.expires:
        raise InvalidSubscriptionToken("this link has expired; subscribe again")
    return claim
