"""Drill: PostgreSQL goes away for a while (``pg_ctl stop``) while incidents progress.

Workflows must keep advancing (escalations fire, responders act: the query shows it), the
ticket activities must retry rather than give up, a trigger that arrives meanwhile must get
its incident once the database is back, and afterwards every incident's ``incident_events``
must be gap-free and equal to its timeline: ``incidentflow verify`` exits 0.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client

from schemas.actions import NoteInput
from schemas.enums import Action, EventKind
from schemas.incident import Alert, IncidentRef
from tests.conftest import wait_for
from tests.support_drills import drill_postgres, fetch_all, fresh_database, terminate_all
from tests.support_incidents import make_policy, running_stack
from worker.devinfra import EmbeddedPostgres

pytestmark = pytest.mark.slow

INCIDENTS = 20
ACKED = 5
#: how long the database stays down (the issue asks for ~30 s; 15 s shows the same retries)
OUTAGE = 15.0
INCIDENTFLOW = Path(sys.executable).parent / "incidentflow"


async def test_postgres_outage_loses_nothing(temporal_client: Client, task_queue: str) -> None:
    pg = drill_postgres()
    try:
        server_url = await asyncio.to_thread(pg.start)
        with fresh_database(server_url) as database_url:
            try:
                await _drill(temporal_client, task_queue, pg, database_url)
            finally:
                await asyncio.to_thread(pg.resume)  # no-op unless the drill failed mid-outage
    finally:
        await asyncio.to_thread(pg.stop)


async def _drill(
    temporal: Client, task_queue: str, pg: EmbeddedPostgres, database_url: str
) -> None:
    policy = make_policy(level_delay=2.5, levels=3, ack_within=60)
    late: asyncio.Task[IncidentRef] | None = None
    async with running_stack(temporal, database_url, task_queue, policy) as st:
        try:
            prefix = uuid.uuid4().hex[:8]
            refs = await asyncio.gather(
                *(
                    st.client.trigger(
                        Alert(service="checkout", title=f"pg {i}", dedup_key=f"{prefix}-{i}")
                    )
                    for i in range(INCIDENTS)
                )
            )
            numbers = [r.number for r in refs]

            async def all_rows() -> bool:
                [(count,)] = await fetch_all(database_url, "SELECT count(*) FROM incidents")
                return count == INCIDENTS

            await wait_for(all_rows, timeout=20, message="ticket rows before the outage")

            await asyncio.to_thread(pg.halt)
            down_at = datetime.now(UTC)
            down_clock = time.monotonic()

            # responders keep working: updates need no database
            for number in numbers[:ACKED]:
                await st.client.acknowledge(number, "alice", note="acked during the outage")
            for number in numbers[ACKED : 2 * ACKED]:
                note = NoteInput(actor="bob", text="note during the outage")
                await st.client.act(number, Action.ADD_NOTE, note)
            # a new alert meanwhile: it waits for its number, it is not lost
            late = asyncio.create_task(
                st.client.trigger(
                    Alert(service="checkout", title="during outage", dedup_key=f"{prefix}-late")
                )
            )

            async def escalated_while_down(number: str) -> bool:
                snap = await st.client.get(number)
                return any(e.kind == EventKind.ESCALATED and e.at > down_at for e in snap.timeline)

            async def advancing() -> bool:
                waiting = numbers[ACKED:]
                return all(await asyncio.gather(*(escalated_while_down(n) for n in waiting)))

            await wait_for(advancing, timeout=OUTAGE, interval=0.3, message="escalations")

            async def ticket_write_retrying() -> bool:
                """Some record_incident is on attempt 2+ after a database error."""
                for r in refs:
                    described = await temporal.get_workflow_handle(r.workflow_id).describe()
                    for a in described.raw_description.pending_activities:
                        if a.activity_type.name == "record_incident" and a.attempt >= 2:
                            return bool(a.last_failure.message)
                return False

            await wait_for(ticket_write_retrying, timeout=OUTAGE, message="record_incident retry")
            assert not late.done(), "a trigger completed without its incident number"

            await wait_for(
                lambda: time.monotonic() - down_clock >= OUTAGE,
                timeout=OUTAGE + 1,
                message="the end of the outage",
            )
            await asyncio.to_thread(pg.resume)
            outage = time.monotonic() - down_clock

            ref = await asyncio.wait_for(late, 60)
            assert ref.created and ref.number.startswith("INC-")
            numbers.append(ref.number)

            # the operator's check: verify, as a process, over this database and queue
            env = {
                **os.environ,
                "TEMPORAL_ADDRESS": temporal.service_client.config.target_host,
                "DATABASE_URL": database_url,
            }
            proc = await asyncio.create_subprocess_exec(
                str(INCIDENTFLOW),
                "verify",
                "--task-queue",
                task_queue,
                "--settle",
                "60",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(proc.communicate(), 120)
            assert proc.returncode == 0, output.decode()
            assert f"verified {INCIDENTS + 1} incident(s)" in output.decode()

            # and the same, spelled out: events 1..last_seq, each equal to the timeline
            for number in numbers:
                snap = await st.client.get(number)
                stored = await fetch_all(
                    database_url,
                    "SELECT seq, kind FROM incident_events WHERE number = %s ORDER BY seq",
                    number,
                )
                assert stored == [(e.seq, e.kind.value) for e in snap.timeline], number
            print(f"\npostgres drill: down {outage:.1f}s, recovered and verified")
        finally:
            if late is not None and not late.done():
                late.cancel()
            await terminate_all(temporal, task_queue)
