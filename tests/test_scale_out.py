"""Horizontal scale: two ``incidentflow worker`` processes on one task queue, one SIGKILLed.

A burst of incidents is spread over both workers. Between the first page and the escalation
to level 2 the busier worker is killed (no drain, no goodbye). Its incidents' timers fire
into its sticky queue, time out there and move to the survivor, which replays them: every
incident still escalates to level 2, exactly once, and every page goes out exactly once.

The kill falls while no activity runs, on purpose: an activity lost with its worker is retried
only after its start-to-close timeout (a minute), which says nothing more about scale-out.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
import uuid
from collections import Counter
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from schemas.enums import EventKind
from schemas.incident import Alert, IncidentRef
from starter.client import IncidentClient
from tests.conftest import wait_for
from tests.support_deploy import children, deploy_policy, process_env, rows, write_policy

BURST = 40
#: level 1 -> level 2 after this long: room for the burst to settle and the kill to land
FIRST_DELAY = 15.0


async def sticky_owner(client: Client, workflow_id: str) -> str:
    """Identity of the worker that completed the workflow's last workflow task."""
    owner = ""
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            owner = event.workflow_task_completed_event_attributes.identity
    return owner


async def settled(client: Client, workflow_id: str) -> bool:
    """No activity pending and no workflow task outstanding: nothing for a kill to lose."""
    desc = await client.get_workflow_handle(workflow_id).describe()
    raw = desc.raw_description
    return not raw.pending_activities and not raw.HasField("pending_workflow_task")


async def test_two_workers_one_killed_every_incident_escalates_once(
    tmp_path: Path, temporal_env: WorkflowEnvironment, database_url: str, task_queue: str
) -> None:
    policy = deploy_policy(first_delay=FIRST_DELAY)
    env = process_env(
        temporal_address=temporal_env.client.service_client.config.target_host,
        temporal_namespace=temporal_env.client.namespace,
        temporal_task_queue=task_queue,
        database_url=database_url,
        incidentflow_policy=str(write_policy(tmp_path / "policy.yaml", policy)),
    )
    client = temporal_env.client
    with children(tmp_path) as procs:
        workers = [procs.worker("worker-a", env), procs.worker("worker-b", env)]
        await asyncio.gather(*(w.wait_log("worker polling task queue") for w in workers))
        identity = {f"{w.pid}@{socket.gethostname()}": w for w in workers}

        incidents = IncidentClient(client, policy, task_queue=task_queue)
        run = uuid.uuid4().hex[:8]
        burst_started = time.monotonic()
        refs: list[IncidentRef] = await asyncio.gather(
            *(
                incidents.trigger(
                    Alert(service="checkout", title=f"burst {i}", dedup_key=f"{run}-{i}")
                )
                for i in range(BURST)
            )
        )
        numbers = [r.number for r in refs]
        assert len(set(numbers)) == BURST

        async def level_one_paged() -> bool:
            sent = await rows(
                database_url,
                "SELECT count(*) AS n FROM notifications WHERE number = ANY(%s) "
                "AND recipient = 'alice' AND status = 'sent'",
                numbers,
            )
            return sent[0]["n"] == BURST

        await wait_for(level_one_paged, timeout=60, message="level 1 paged for all")

        async def all_settled() -> bool:
            states = await asyncio.gather(*(settled(client, r.workflow_id) for r in refs))
            return all(states)

        await wait_for(all_settled, timeout=60, message="the burst to settle")
        owners = await asyncio.gather(*(sticky_owner(client, r.workflow_id) for r in refs))
        per_worker = Counter(owners)
        assert set(per_worker) <= set(identity), per_worker
        victim_id, owned = per_worker.most_common(1)[0]
        victim = identity[victim_id]
        survivor = next(w for w in workers if w is not victim)

        # normally long before the first level-2 timer; on a machine so loaded that timers
        # fired meanwhile, an activity may die with the victim and the deadline below allows
        # for its one-minute retry
        victim.signal(signal.SIGKILL)
        killed_early = time.monotonic() - burst_started < FIRST_DELAY
        assert await victim.wait_exit(within=10) == -signal.SIGKILL

        async def all_at_level_two() -> bool:
            found = await rows(
                database_url,
                "SELECT count(*) AS n FROM notifications WHERE number = ANY(%s) "
                "AND recipient = 'bob' AND status = 'sent'",
                numbers,
            )
            return found[0]["n"] >= BURST

        # the victim's incidents wait out the sticky-queue timeout (10 s) before moving over
        await wait_for(
            all_at_level_two,
            timeout=FIRST_DELAY + (30 if killed_early else 90),
            interval=0.25,
            message="level 2 for all",
        )

        # exactly once, as the ticket store recorded it ...
        escalations = await rows(
            database_url,
            "SELECT number, details->>'level' AS level, count(*) AS n FROM incident_events "
            "WHERE number = ANY(%s) AND kind = 'escalated' GROUP BY 1, 2",
            numbers,
        )
        assert sorted((e["number"], e["level"], e["n"]) for e in escalations) == sorted(
            (n, "2", 1) for n in numbers
        )
        pages = await rows(
            database_url,
            "SELECT number, seq, recipient, status, count(*) AS n FROM notifications "
            "WHERE number = ANY(%s) GROUP BY 1, 2, 3, 4",
            numbers,
        )
        assert len(pages) == 2 * BURST, pages
        assert all(p["n"] == 1 and p["status"] == "sent" for p in pages), pages
        assert Counter(p["recipient"] for p in pages) == {"alice": BURST, "bob": BURST}

        # ... and as each workflow itself holds it, answered by the survivor
        snapshots = await asyncio.gather(*(incidents.get(n) for n in numbers))
        for snap in snapshots:
            assert snap.escalation.level == 2, snap.number
            assert [e.kind for e in snap.timeline].count(EventKind.ESCALATED) == 1, snap.number
        moved = await asyncio.gather(
            *(
                sticky_owner(client, r.workflow_id)
                for r, o in zip(refs, owners, strict=True)
                if o == victim_id
            )
        )
        assert len(moved) == owned >= 1
        assert set(moved) == {f"{survivor.pid}@{socket.gethostname()}"}

        survivor.signal(signal.SIGTERM)
        assert await survivor.wait_exit(within=20) == 0, survivor.tail()
