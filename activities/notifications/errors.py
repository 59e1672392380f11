"""How a channel reports a failed send: permanent (record it, never retry) or transient
(let Temporal retry the activity, honouring ``retry_after`` when the receiver gave one)."""

from __future__ import annotations


class DeliveryError(Exception):
    """A send that did not happen. ``reason`` is recorded and shown: never put secrets in it."""

    def __init__(self, reason: str, *, transient: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.retry_after = retry_after


def permanent(reason: str) -> DeliveryError:
    return DeliveryError(reason, transient=False)


def transient(reason: str, retry_after: float | None = None) -> DeliveryError:
    return DeliveryError(reason, transient=True, retry_after=retry_after)
