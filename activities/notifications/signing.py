"""Re-export of :mod:`schemas.webhook_signing`: the algorithm is pure and shared with the
API's inbound webhooks, so it lives in ``schemas``."""

from schemas.webhook_signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign_webhook,
    verify_webhook,
)

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "sign_webhook", "verify_webhook"]
