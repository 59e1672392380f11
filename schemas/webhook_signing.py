"""HMAC-SHA256 signatures of webhook bodies, shared by outbound notifications and the API's
inbound webhooks so both sides use one documented algorithm (``docs/webhooks.md``).

The signed message is ``f"{timestamp}.".encode() + body``: the timestamp is covered so a
captured request cannot be replayed outside the tolerance window.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

TIMESTAMP_HEADER = "X-Incidentflow-Timestamp"
SIGNATURE_HEADER = "X-Incidentflow-Signature"
_PREFIX = "sha256="


def sign_webhook(secret: str, timestamp: int | str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, "<timestamp>." + body)."""
    message = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def verify_webhook(
    secret: str,
    timestamp: int | str,
    body: bytes,
    signature: str,
    *,
    now: datetime | float,
    tolerance: float = 300,
) -> bool:
    """True when ``signature`` matches and ``timestamp`` is within ``tolerance`` s of ``now``."""
    stamp = str(timestamp).strip()
    try:
        sent_at = int(stamp)
    except ValueError:
        return False
    current = now.timestamp() if isinstance(now, datetime) else float(now)
    if abs(current - sent_at) > tolerance:
        return False
    expected = sign_webhook(secret, stamp, body)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())
