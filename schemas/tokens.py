"""API tokens: only their SHA-256 lives in the policy file, and look-ups run in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from schemas.policy import ApiToken, Policy


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token, the form the policy file stores."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def find_token(policy: Policy, presented: str) -> ApiToken | None:
    """The policy token whose hash matches ``presented``, or ``None``.

    Every token is compared, with ``hmac.compare_digest``, and the loop never exits early,
    so the time taken does not reveal how many tokens exist before the match or how much of
    a hash matched.
    """
    digest = hash_token(presented).encode("ascii")
    found: ApiToken | None = None
    for token in policy.tokens:
        if hmac.compare_digest(digest, token.sha256.encode("ascii")) and found is None:
            found = token
    return found


def generate_token() -> str:
    """A new random token (256 bits, URL-safe); store :func:`hash_token` of it."""
    return secrets.token_urlsafe(32)
