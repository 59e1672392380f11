"""Heartbeats from the client side: a ping is a signal-with-start to the heartbeat's
workflow (``heartbeat:<name>``), its state a query.

The first ping starts the workflow; every ping carries the heartbeat's current settings and
the incident a miss would open, so the workflow follows a reloaded policy.
"""

from __future__ import annotations

from temporalio.service import RPCError, RPCStatusCode

from schemas.heartbeat import (
    HeartbeatConfig,
    HeartbeatPing,
    HeartbeatStart,
    HeartbeatState,
    PingSource,
)
from schemas.incident import Alert
from schemas.policy import Heartbeat
from schemas.workflow_ids import heartbeat_workflow_id
from starter.client import IncidentClient
from starter.errors import ServiceUnavailable, UnknownService
from workflows.heartbeat import HeartbeatWorkflow


async def ping(
    incidents: IncidentClient, heartbeat: Heartbeat, alert: Alert, source: PingSource
) -> str:
    """Restart ``heartbeat``'s clock (starting its workflow on the first ping); returns the
    workflow ID."""
    service = incidents.policy.service(heartbeat.service)
    if service is None:  # the policy's reference check makes this unreachable
        raise UnknownService(f"heartbeat {heartbeat.name!r} names unknown service")
    config = HeartbeatConfig(
        heartbeat=heartbeat, alert=alert, policy=incidents.incident_policy(service)
    )
    workflow_id = heartbeat_workflow_id(heartbeat.name)
    try:
        await incidents.client.start_workflow(
            HeartbeatWorkflow.run,
            HeartbeatStart(config=config),
            id=workflow_id,
            task_queue=incidents.task_queue,
            start_signal="ping",
            start_signal_args=[HeartbeatPing(config=config, source=source)],
        )
    except RPCError as err:
        if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise ServiceUnavailable(f"Temporal is unreachable: {err.message}") from err
        raise
    return workflow_id


async def state(incidents: IncidentClient, name: str) -> HeartbeatState | None:
    """What ``name``'s workflow knows, or ``None`` when it never pinged."""
    handle = incidents.client.get_workflow_handle(heartbeat_workflow_id(name))
    try:
        return await handle.query(HeartbeatWorkflow.state)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise ServiceUnavailable(f"Temporal is unreachable: {err.message}") from err
        raise
