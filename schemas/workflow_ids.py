"""Workflow IDs: how a key finds its one running workflow. One place, read by the client
(update-with-start, signals) and by the heartbeat workflow (which opens incidents itself)."""

from __future__ import annotations

import hashlib


def incident_workflow_id(service: str, dedup_key: str) -> str:
    """Workflow ID of the incident for an alert key: one running incident per key.

    Long or odd keys are hashed so the ID stays short and printable.
    """
    if len(dedup_key) <= 120 and dedup_key.isprintable():
        return f"incident:{service}:{dedup_key}"
    digest = hashlib.sha256(dedup_key.encode()).hexdigest()[:32]
    return f"incident:{service}:sha256-{digest}"


def heartbeat_workflow_id(name: str) -> str:
    """Workflow ID of a heartbeat's dead man's switch: one per heartbeat name."""
    return f"heartbeat:{name}"


def subscriber_id(email: str) -> str:
    """A subscriber's key: the SHA-256 of the address, lower-cased (the row's id, the
    signed links' subject), so neither a workflow ID nor a log line shows the address."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def subscription_workflow_id(email: str) -> str:
    """Workflow ID of a subscription's confirmation mail: one at a time per address."""
    return f"status-subscription:{subscriber_id(email)[:40]}"
