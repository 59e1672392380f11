"""Graceful shutdown of the real processes, as an orchestrator stops them (SIGTERM).

The worker: SIGTERM while a notification is on the wire lets it finish within
``WORKER_SHUTDOWN_GRACE_SECONDS`` (the row ends ``sent``, the process exits 0); a grace
shorter than the send cancels it instead, and the next worker delivers it. The API: SIGTERM
closes the listener at once but answers the request already in flight, unless it outlasts
``API_SHUTDOWN_GRACE_SECONDS``; either way the process exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from schemas.incident import Alert
from starter.client import IncidentClient, incident_workflow_id
from tests.conftest import wait_for
from tests.support_deploy import (
    API_TOKEN,
    Child,
    SlowReceiver,
    children,
    deploy_policy,
    free_ports,
    process_env,
    rows,
    wait_event,
    write_policy,
)
from tests.support_drills import TIME_SCALE
from tests.support_incidents import running_stack

#: how long the webhook receiver takes to answer
RECEIVER_DELAY = 2.0


def worker_env(
    temporal_env: WorkflowEnvironment,
    database_url: str,
    policy: Path,
    task_queue: str,
    grace: float,
) -> dict[str, str]:
    return process_env(
        temporal_address=temporal_env.client.service_client.config.target_host,
        temporal_namespace=temporal_env.client.namespace,
        temporal_task_queue=task_queue,
        database_url=database_url,
        incidentflow_policy=str(policy),
        worker_shutdown_grace_seconds=str(grace),
    )


async def test_sigterm_lets_the_in_flight_notification_finish(
    tmp_path: Path, temporal_env: WorkflowEnvironment, database_url: str, task_queue: str
) -> None:
    grace = 15.0 * TIME_SCALE
    with SlowReceiver(RECEIVER_DELAY) as receiver, children(tmp_path) as procs:
        policy = deploy_policy(alice_webhook=receiver.url("/page"))
        env = worker_env(
            temporal_env, database_url, write_policy(tmp_path / "p.yaml", policy), task_queue, grace
        )
        health = tmp_path / "worker.alive"
        env["WORKER_HEALTH_FILE"] = str(health)
        worker = procs.worker("worker", env)
        await worker.wait_log("worker polling task queue")
        await wait_for(health.exists, timeout=5, message="the health file")

        incidents = IncidentClient(temporal_env.client, policy, task_queue=task_queue)
        ref = await incidents.trigger(Alert(service="checkout", title="checkout is down"))
        await wait_event(receiver.arrived, within=20, message="the page to reach the receiver")
        assert not receiver.answered, "the receiver answered before SIGTERM: the test is moot"

        stopped_at = time.monotonic()
        worker.signal(signal.SIGTERM)
        code = await worker.wait_exit(within=grace + 10 * TIME_SCALE)
        exited_at = time.monotonic()
        took = exited_at - stopped_at

        assert code == 0, worker.tail()
        assert len(receiver.answered) == 1, "the in-flight request was not completed"
        # SIGTERM, then the answer to the request in flight, then the exit: the worker
        # waited for the send instead of dropping it
        assert stopped_at < receiver.answered[0] < exited_at
        # and exited once drained, not at the end of the grace (TEST_TIME_SCALE scales both)
        assert took < grace, f"shutdown took {took:.1f}s, more than the {grace}s grace"
        assert "draining in-flight activities" in worker.log()
        assert not health.exists(), "a stopped worker must not look healthy"
        sent = await rows(
            database_url,
            "SELECT status, attempts FROM notifications WHERE number = %s AND recipient = 'alice'",
            ref.number,
        )
        assert sent == [{"status": "sent", "attempts": 1}]


async def test_grace_shorter_than_the_send_cancels_it_and_the_next_worker_delivers(
    tmp_path: Path, temporal_env: WorkflowEnvironment, database_url: str, task_queue: str
) -> None:
    grace = 0.2
    with SlowReceiver(RECEIVER_DELAY) as receiver, children(tmp_path) as procs:
        policy = deploy_policy(alice_webhook=receiver.url("/page"))
        env = worker_env(
            temporal_env, database_url, write_policy(tmp_path / "p.yaml", policy), task_queue, grace
        )
        first = procs.worker("worker-1", env)
        await first.wait_log("worker polling task queue")
        incidents = IncidentClient(temporal_env.client, policy, task_queue=task_queue)
        ref = await incidents.trigger(Alert(service="checkout", title="checkout is down"))
        await wait_event(receiver.arrived, within=20, message="the page to reach the receiver")

        first.signal(signal.SIGTERM)
        assert await first.wait_exit(within=RECEIVER_DELAY + 10) == 0, first.tail()
        query = "SELECT status, attempts FROM notifications WHERE number = %s AND recipient = %s"
        # cut off by the short grace: claimed once, never recorded as sent
        assert await rows(database_url, query, ref.number, "alice") == [
            {"status": "pending", "attempts": 1}
        ]

        second = procs.worker("worker-2", env)
        await second.wait_log("worker polling task queue")

        async def delivered() -> bool:
            found = await rows(database_url, query, ref.number, "alice")
            return found == [{"status": "sent", "attempts": 2}]

        await wait_for(delivered, timeout=30, message="the next worker to deliver the page")


@asynccontextmanager
async def api_with_request_in_flight(
    tmp_path: Path,
    temporal_env: WorkflowEnvironment,
    database_url: str,
    task_queue: str,
    grace: float,
) -> AsyncIterator[tuple[Child, asyncio.Task[httpx.Response], float]]:
    """An ``incidentflow api`` process, a ``POST /incidents`` provably inside it (no worker
    polls the task queue yet, so the update-with-start waits once the workflow exists), and
    the monotonic time just before the API was sent SIGTERM."""
    port = free_ports(1)[0]
    env = process_env(
        temporal_address=temporal_env.client.service_client.config.target_host,
        temporal_namespace=temporal_env.client.namespace,
        temporal_task_queue=task_queue,
        database_url=database_url,
        incidentflow_policy=str(write_policy(tmp_path / "p.yaml", deploy_policy())),
        api_shutdown_grace_seconds=str(grace),
    )
    base = f"http://127.0.0.1:{port}"
    key = f"sigterm-{uuid.uuid4().hex[:8]}"
    with children(tmp_path) as procs:
        api = procs.api("api", env, port)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await wait_for(lambda: api_ready(http), timeout=30, interval=0.2, message="API ready")
            request = asyncio.create_task(
                http.post(
                    "/api/v1/incidents",
                    json={"title": "checkout is down", "service": "checkout", "dedup_key": key},
                    headers={"Authorization": f"Bearer {API_TOKEN}"},
                )
            )
            try:
                handle = temporal_env.client.get_workflow_handle(
                    incident_workflow_id("checkout", key)
                )
                await wait_for(
                    lambda: workflow_exists(handle), timeout=15, message="the request in flight"
                )
                signalled = time.monotonic()
                api.signal(signal.SIGTERM)
                await wait_for(
                    lambda: refuses_connections(base), timeout=10, message="the listener to close"
                )
                assert not request.done(), "answered before a worker ran: the test is moot"
                yield api, request, signalled
            finally:
                request.cancel()


async def test_api_sigterm_stops_accepting_and_answers_the_request_in_flight(
    tmp_path: Path, temporal_env: WorkflowEnvironment, database_url: str, task_queue: str
) -> None:
    async with api_with_request_in_flight(
        tmp_path, temporal_env, database_url, task_queue, grace=20
    ) as (api, request, _signalled):
        # a worker now lets the waiting update complete: the API answers, then exits
        policy = deploy_policy()
        async with running_stack(temporal_env.client, database_url, task_queue, policy):
            response = await request
        code = await api.wait_exit(within=25)
    assert response.status_code == 201, response.text
    assert response.json()["number"].startswith("INC-")
    assert code == 0, api.tail()


async def test_api_cuts_a_request_that_outlasts_its_grace(
    tmp_path: Path, temporal_env: WorkflowEnvironment, database_url: str, task_queue: str
) -> None:
    grace = 1.0
    async with api_with_request_in_flight(
        tmp_path, temporal_env, database_url, task_queue, grace=grace
    ) as (api, request, signalled):
        code = await api.wait_exit(within=grace + 10 * TIME_SCALE)
        took = time.monotonic() - signalled
        # no worker ever came: cut after the grace, the caller hears so and may retry (the
        # dedup key makes the retry attach to the same incident)
        try:
            status = (await request).status_code
        except httpx.TransportError:
            status = None  # the connection closed without an answer
        assert status in (None, 503), status
    assert code == 0, api.tail()
    # SIGTERM, the grace, then the exit: the request was cut only once the grace was over...
    assert took >= grace, f"exit after {took:.1f}s, within the {grace}s grace"
    # ... and soon after it (TEST_TIME_SCALE for a loaded host)
    assert took < grace + 5 * TIME_SCALE, f"exit took {took:.1f}s with a {grace}s grace"


async def api_ready(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/readyz")).status_code == 200
    except httpx.TransportError:
        return False


async def workflow_exists(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        await handle.describe()
    except RPCError:
        return False
    return True


async def refuses_connections(base: str) -> bool:
    """A fresh connection is refused (the in-flight one is untouched)."""
    async with httpx.AsyncClient(base_url=base, timeout=2) as fresh:
        try:
            await fresh.get("/healthz")
        except httpx.ConnectError:
            return True
    return False
