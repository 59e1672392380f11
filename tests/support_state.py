"""Reading what a request could have changed, so a refused request can be shown to have
changed nothing: whether an incident workflow exists for an alert key, the facts of an
incident that any accepted action would move, and which workflows were started on a task
queue.

Workflow existence and incident facts come straight from Temporal (describe, query), which is
consistent at once; only :func:`started_on` reads visibility, behind a barrier workflow.
"""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from schemas.incident import IncidentSnapshot
from starter.client import incident_workflow_id
from tests.conftest import wait_for
from workflows.incident import IncidentWorkflow

#: snapshot fields some accepted request (trigger, repeat, clear, any action) would change
FACT_FIELDS = (
    "number",
    "status",
    "severity",
    "priority",
    "alert_count",
    "alert_cleared",
    "reopen_count",
    "responders",
    "participants",
    "merged_into",
    "close_reason",
    "last_seq",
)


def incident_facts(snapshot: IncidentSnapshot) -> dict[str, Any]:
    """What an incident looks like to a responder, minus clocks: equal before and after a
    request exactly when the request changed nothing about it."""
    data = snapshot.model_dump(mode="json")
    facts = {name: data[name] for name in FACT_FIELDS}
    facts["escalation_level"] = data["escalation"]["level"]
    facts["timeline"] = [(e["seq"], e["kind"], e["actor"]) for e in data["timeline"]]
    return facts


async def workflow_exists(temporal: Client, workflow_id: str) -> bool:
    """Whether any run of ``workflow_id`` was ever started (describe: consistent at once)."""
    try:
        await temporal.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def key_incident(temporal: Client, service: str, dedup_key: str) -> dict[str, Any] | None:
    """Facts of the incident for an alert key (its latest run), or None if none was started.

    Needs a worker for the task queue (the facts come from the ``state`` query).
    """
    workflow_id = incident_workflow_id(service, dedup_key)
    if not await workflow_exists(temporal, workflow_id):
        return None
    snapshot = await temporal.get_workflow_handle(workflow_id).query(IncidentWorkflow.state)
    return incident_facts(snapshot)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def started_on(temporal: Client, task_queue: str, *, within: float = 15.0) -> list[str]:
    """IDs of the workflows ever started on ``task_queue``, as visibility lists them.

    Visibility lags: a barrier workflow (on a queue of its own, so no worker runs it) is
    started now and the listing is taken once the barrier shows up in it, so starts before
    this call have been indexed too. The barrier is terminated and left out of the answer.
    """
    barrier = f"visibility-barrier-{uuid.uuid4()}"
    handle = await temporal.start_workflow(
        "VisibilityBarrier", id=barrier, task_queue=f"{task_queue}-barrier"
    )
    query = f"TaskQueue = {_quote(task_queue)} OR WorkflowId = {_quote(barrier)}"

    async def listed() -> list[str] | None:
        ids = [wf.id async for wf in temporal.list_workflows(query)]
        return ids if barrier in ids else None

    try:
        ids = await wait_for(listed, timeout=within, message=f"barrier {barrier} in visibility")
    finally:
        await handle.terminate("visibility barrier")
    return sorted(i for i in ids if i != barrier)
