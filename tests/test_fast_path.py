"""The integrations' fast path: an alert is answered once Temporal holds it (signal-with-start)
and is never lost nor counted twice, even when it reaches a run that is closing or
continuing as new (``IncidentWorkflow.alert_received``)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.client import (
    Client,
    Interceptor,
    ListWorkflowsInput,
    OutboundInterceptor,
    WorkflowExecutionAsyncIterator,
    WorkflowExecutionStatus,
    WorkflowHistory,
)

from schemas.actions import CancelInput, NoteInput
from schemas.actors import Person
from schemas.enums import Action
from schemas.incident import Alert
from schemas.policy_file import load_policy
from starter.client import IncidentClient
from tests.conftest import wait_for
from tests.support_api import ApiStack, alertmanager_alert, alertmanager_payload, api_stack
from tests.support_drills import assert_verified, drill_policy_yaml, fetch_all
from tests.support_incidents import Stack, record_history, running_stack
from tests.support_receivers import HttpReceiver
from workflows.incident import PATCHES_2026_11

#: alerts in the flood: the incident is cancelled halfway, so some reach a run that counts
#: them, some race the cancel, and the rest reach the closing run (which carries them) or
#: its successor
FLOOD = 400
CLIENTS = 32
#: of which this many are sent twice with the same alert id (a retried signal)
RESENT = 40


@asynccontextmanager
async def closing_slowly(
    temporal: Client, database_url: str, task_queue: str, tmp_path: Path, key: str
) -> AsyncIterator[tuple[Stack, str]]:
    """A stack and an open incident for ``key`` whose first page fails twice, so a run that
    closes drains it for about 3 s (1 s + 2 s of retry backoff): alerts sent meanwhile reach
    the closing run."""
    with HttpReceiver() as receiver:
        policy_file = tmp_path / "policy.yaml"
        users = [{"name": "l1", "webhook": receiver.url("/l1")}]
        policy_file.write_text(drill_policy_yaml(users=users, level_delay="300s"))
        receiver.script("/l1", 500, 500)
        policy = load_policy(policy_file)
        async with running_stack(temporal, database_url, task_queue, policy) as st:
            await st.client.enqueue(Alert(service="checkout", title="disk full", dedup_key=key))
            number = await st.client.open_incident_for_key("checkout", key)
            assert number is not None
            await receiver.wait_requests("/l1", 1, within=15)
            yield st, number


async def cancel(st: Stack, number: str) -> None:
    await st.client.act(
        number, Action.CANCEL, CancelInput(actor=Person(name="alice"), reason="drill")
    )


async def counted(database_url: str, key: str, alerts: int) -> list[tuple[str, int]]:
    """The key's incidents (number, alert count) once they count ``alerts`` in all; fails at
    once when they count more."""

    async def probe() -> list[tuple[str, int]] | None:
        rows = await fetch_all(
            database_url,
            "SELECT number, alert_count FROM incidents WHERE dedup_key = %s ORDER BY created_at",
            key,
        )
        total = sum(count for _, count in rows)
        assert total <= alerts, f"{alerts} alerts counted as {total}: {rows}"
        return rows if total == alerts else None

    rows: list[tuple[str, int]] = await wait_for(probe, timeout=30, message=f"{alerts} alerts")
    return rows


async def continued_as_the_next_incident(temporal: Client, number: str) -> bool:
    """Whether the incident's last run carried alerts into the key's next incident (it
    continued as new instead of completing)."""
    ended = {wf.status async for wf in temporal.list_workflows(f"IncidentNumber = '{number}'")}
    return WorkflowExecutionStatus.COMPLETED not in ended


async def test_alerts_to_a_closing_run_open_the_next_incident(
    temporal_client: Client, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    key = f"closing-{uuid.uuid4().hex[:8]}"
    async with closing_slowly(temporal_client, database_url, task_queue, tmp_path, key) as (
        st,
        first,
    ):
        await cancel(st, first)
        alert = Alert(service="checkout", title="disk full again", dedup_key=key)
        for _ in range(3):
            assert await st.client.enqueue(alert) == key
        rows = await counted(database_url, key, 4)
        assert rows[0] == (first, 1) and rows[1][1] == 3, rows
        assert await continued_as_the_next_incident(temporal_client, first)
        assert (await st.client.get(first)).status == "closed"
        second = await st.client.get(rows[1][0])
        assert (second.status, second.title, second.alert_count) == ("triggered", alert.title, 3)
        await assert_verified(temporal_client, database_url, task_queue)  # rows == workflows
        await record_history(st, first, "fast_path_closing_run_carries_alerts")
        # the next incident's number came with its first ticket write (open-in-one-write)
        await record_history(st, rows[1][0], "open_in_one_write")


async def test_flood_across_close_and_continue_as_new_counts_every_alert_once(
    temporal_client: Client, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    key = f"storm-{uuid.uuid4().hex[:8]}"
    async with closing_slowly(temporal_client, database_url, task_queue, tmp_path, key) as (
        st,
        first,
    ):
        alert = Alert(service="checkout", title="disk full", dedup_key=key)
        ids = [uuid.uuid4().hex for _ in range(FLOOD)]
        gate = asyncio.Semaphore(CLIENTS)

        async def send(alert_id: str) -> str:
            async with gate:
                return await st.client.enqueue(alert.model_copy(update={"alert_id": alert_id}))

        async def flood(alert_ids: list[str]) -> set[str]:
            return set(await asyncio.gather(*(send(i) for i in alert_ids)))

        half, three_quarters = FLOOD // 2, FLOOD * 3 // 4
        started = time.monotonic()
        # the first half, and its resent ids (the same alert id again: a retried signal),
        # reach the open run; the third quarter races the cancel; the last quarter comes once
        # the incident is closed, so it reaches the closing run or its successor
        keys = await flood(ids[:half] + ids[:RESENT])
        raced = await asyncio.gather(cancel(st, first), flood(ids[half:three_quarters]))
        keys |= raced[1] | await flood(ids[three_quarters:])
        assert keys == {key}
        took = time.monotonic() - started
        rows = await counted(database_url, key, FLOOD + 1)
        assert rows[0][0] == first and len(rows) == 2, rows
        assert await continued_as_the_next_incident(temporal_client, first)
        await assert_verified(temporal_client, database_url, task_queue)
        sent = FLOOD + RESENT
        print(f"\nflood: {sent} signals in {took:.1f}s ({sent / took:.0f}/s): {rows}")


async def test_integrations_and_respond_async_answer_before_the_number(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with api_stack(temporal_client, database_url, task_queue) as api:
        body = {"title": "queue backlog", "service": api.names.service, "dedup_key": "backlog"}
        accepted = await api.http.post(
            "/api/v1/incidents",
            json=body,
            headers={**api.auth("ingest"), "Prefer": "respond-async"},
        )
        assert accepted.status_code == 202, accepted.text
        assert accepted.json() == {"status": "accepted", "dedup_key": "backlog"}
        assert accepted.headers["Preference-Applied"] == "respond-async"

        # without the preference the native API still answers with the number
        repeated = await api.http.post("/api/v1/incidents", json=body, headers=api.auth("ingest"))
        assert repeated.status_code == 200, repeated.text
        assert repeated.json()["alert_count"] == 2
        number = repeated.json()["number"]
        timeline = await api.http.get(
            f"/api/v1/incidents/{number}/timeline", headers=api.auth("read")
        )
        assert timeline.json()["events"][0]["kind"] == "triggered"
        # its level-1 page ran with a heartbeat timeout (patch notify-heartbeats)
        await record_history(api.stack, number, "notify_heartbeats_page")

        # Alertmanager: a flapping check fires and clears back to back; the clear reaches the
        # new run before its trigger step and is applied after it, never before
        url = f"/api/v1/integrations/alertmanager/{api.names.key}"
        firing = alertmanager_alert("f1a9f1a9", "web-7:8080")
        fired = await api.http.post(url, json=alertmanager_payload([firing]))
        clear = alertmanager_alert("f1a9f1a9", "web-7:8080", status="resolved")
        cleared = await api.http.post(url, json=alertmanager_payload([clear], status="resolved"))
        assert (fired.status_code, cleared.status_code) == (202, 202), cleared.text
        assert cleared.json()["results"][0]["action"] == "cleared"
        flapped = await api.stack.client.open_incident_for_key(api.names.service, "f1a9f1a9")
        assert flapped is None  # resolved already, or about to be

        async def resolved() -> list[str] | None:
            rows = await fetch_all(
                database_url,
                "SELECT e.kind FROM incident_events e JOIN incidents i USING (number) "
                "WHERE i.dedup_key = 'f1a9f1a9' ORDER BY e.seq",
            )
            kinds = [kind for (kind,) in rows]
            return kinds if "resolved" in kinds else None

        kinds = await wait_for(resolved, timeout=15, message="the flapping alert resolved")
        assert kinds == ["triggered", "alert_cleared", "resolved"], kinds


async def opened_fast(api: ApiStack, database_url: str, key: str) -> str:
    """Trigger ``key`` over the native API with ``Prefer: respond-async`` (202, no number)
    and return the incident's number once its ticket row exists."""
    body = {"title": "queue backlog", "service": api.names.service, "dedup_key": key}
    headers = {**api.auth("ingest"), "Prefer": "respond-async"}
    accepted = await api.http.post("/api/v1/incidents", json=body, headers=headers)
    assert accepted.status_code == 202, accepted.text

    async def ticket_number() -> str | None:
        rows = await fetch_all(
            database_url, "SELECT number FROM incidents WHERE dedup_key = %s", key
        )
        return str(rows[0][0]) if rows else None

    number: str = await wait_for(ticket_number, timeout=15, message="the ticket row")
    return number


class _ListingRecorder(Interceptor):
    """Records the visibility queries a Temporal client makes (the real client, observed)."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        recorder = self

        class Outbound(OutboundInterceptor):
            def list_workflows(self, input: ListWorkflowsInput) -> WorkflowExecutionAsyncIterator:
                recorder.queries.append(input.query or "")
                return super().list_workflows(input)

        return Outbound(next)


async def test_an_action_on_a_fast_path_incident_is_located_in_the_ticket_store(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    """The API never learns a fast-path incident's number, so its first action used to ask
    visibility (a list query, a scan on the dev server's store) before the Update; it now
    reads the ticket row's workflow id, and asks visibility only for what PostgreSQL lacks."""
    recorder = _ListingRecorder()
    config = temporal_client.config()
    config["interceptors"] = [recorder]
    observed = Client(**config)
    async with api_stack(observed, database_url, task_queue) as api:
        number = await opened_fast(api, database_url, f"located-{uuid.uuid4().hex[:8]}")
        acked = await api.http.post(
            f"/api/v1/incidents/{number}/acknowledge", json={}, headers=api.auth("respond")
        )
        assert acked.status_code == 200, acked.text
        assert acked.json()["status"] == "acknowledged"
        assert recorder.queries == []

        # where the locator cannot say (no database, row not written yet), visibility
        # still finds the incident: the action is slower, never refused
        async def unknown(number: str) -> str | None:
            return None

        other = IncidentClient(observed, api.stack.policy, task_queue=task_queue, locate=unknown)
        snapshot = await other.act(
            number, Action.ADD_NOTE, NoteInput(actor=Person(name="alice"), text="from visibility")
        )
        assert snapshot.number == number
        assert len(recorder.queries) == 1 and number in recorder.queries[0]


def _patch_records(history: WorkflowHistory) -> tuple[list[str], int]:
    """The patch ids of a history's ``core_patch`` markers, and how many search-attribute
    upserts set ``TemporalChangeVersion`` (each one a visibility write on the server)."""
    ids: list[str] = []
    version_upserts = 0
    for event in history.events:
        if event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_patch":
                ids += [json.loads(p.data)["id"] for p in marker.details["patch-data"].payloads]
        if event.HasField("upsert_workflow_search_attributes_event_attributes"):
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            version_upserts += "TemporalChangeVersion" in fields.indexed_fields
    return ids, version_upserts


async def test_a_new_incident_takes_every_patch_with_one_marker(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    """A run started by today's code asks the ``patches-2026-11`` bundle once and takes every
    patch with it: one marker and one ``TemporalChangeVersion`` upsert where it recorded one
    of each per patch it reached (three before the first page, more at each action). Runs
    recorded before the bundle replay through each patch (tests/test_replay.py)."""
    async with api_stack(temporal_client, database_url, task_queue) as api:
        number = await opened_fast(api, database_url, f"bundled-{uuid.uuid4().hex[:8]}")
        for action, data in (
            ("acknowledge", {}),
            ("mitigate", {"note": "drained the queue"}),
            ("resolve", {"resolution": "consumer restarted"}),
        ):
            answer = await api.http.post(
                f"/api/v1/incidents/{number}/{action}", json=data, headers=api.auth("respond")
            )
            assert answer.status_code == 200, answer.text

        async def resolved_in_the_ticket() -> bool:
            rows = await fetch_all(
                database_url, "SELECT status FROM incidents WHERE number = %s", number
            )
            return rows == [("resolved",)]

        await wait_for(resolved_in_the_ticket, timeout=15, message="the resolved ticket row")
        history = await api.stack.client.history(number)
        ids, version_upserts = _patch_records(history)
        assert ids == [PATCHES_2026_11], ids
        assert version_upserts == 1
        numbered = [
            e
            for e in history.events
            if e.HasField("upsert_workflow_search_attributes_event_attributes")
            and "IncidentNumber"
            in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        ]
        assert len(numbered) == 1  # visibility still finds it by number
        await record_history(api.stack, number, "patches_bundled_lifecycle")
