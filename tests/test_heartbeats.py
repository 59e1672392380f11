"""Heartbeats (dead man's switch) against the real stack: the API, a worker, Temporal and
PostgreSQL. Intervals are a couple of seconds; every wait is a condition with a deadline."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.client import Client, WorkflowHandle

from schemas.heartbeat import HeartbeatConfig, HeartbeatPing, HeartbeatStart, HeartbeatState
from schemas.incident import IncidentSnapshot
from schemas.policy import Heartbeat, Policy
from schemas.policy_file import PolicyError, load_policy
from schemas.settings import Settings
from schemas.workflow_ids import heartbeat_workflow_id
from starter.api.app import create_app
from starter.api.ingest import build_alert
from tests.conftest import wait_for
from tests.support_api import ApiNames, alertmanager_payload, api_policy, serve
from tests.support_cli import run_cli
from tests.support_incidents import Stack, record_workflow_history, running_stack
from tests.support_state import workflow_exists
from workflows.heartbeat import HeartbeatWorkflow
from workflows.incident import IncidentWorkflow

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "policy.yaml"
#: a ping is due within INTERVAL + GRACE seconds
INTERVAL, GRACE = 3, 1


@dataclass
class Beats:
    http: Any
    stack: Stack
    names: ApiNames
    #: heartbeat names of this test (unique: workflow IDs are per namespace)
    beat: str
    watchdog: str

    def auth(self, token: str = "ingest") -> dict[str, str]:
        return self.names.auth(token)

    async def state(self, name: str) -> HeartbeatState:
        handle = self.stack.temporal.get_workflow_handle(heartbeat_workflow_id(name))
        return await handle.query(HeartbeatWorkflow.state)

    async def listing(self) -> dict[str, dict[str, Any]]:
        """``GET /api/v1/heartbeats`` by name."""
        response = await self.http.get("/api/v1/heartbeats", headers=self.auth("read"))
        assert response.status_code == 200, response.text
        return {h["name"]: h for h in response.json()["heartbeats"]}

    async def incident_rows(self) -> list[dict[str, Any]]:
        return await self.stack.rows(
            "SELECT number, status, source, title, severity, dedup_key FROM incidents"
            " WHERE service = %s ORDER BY number",
            self.names.service,
        )


@asynccontextmanager
async def heartbeat_stack(
    temporal_client: Client, database_url: str, task_queue: str
) -> AsyncIterator[Beats]:
    policy, names = api_policy()
    suffix = uuid.uuid4().hex[:8]
    beat, watchdog = f"nightly-backup-{suffix}", f"prometheus-{suffix}"
    heartbeats = [
        Heartbeat(
            name=beat,
            service=names.service,
            interval=timedelta(seconds=INTERVAL),
            grace=timedelta(seconds=GRACE),
            severity="SEV2",  # type: ignore[arg-type]
        ),
        Heartbeat(
            name=watchdog,
            service=names.service,
            interval=timedelta(seconds=INTERVAL),
            title="Prometheus watchdog silent",
        ),
    ]
    policy = policy.model_copy(update={"heartbeats": heartbeats})
    async with running_stack(temporal_client, database_url, task_queue, policy) as stack:
        settings = Settings(database_url=database_url, temporal_task_queue=task_queue)
        app = create_app(settings, policy, temporal=temporal_client)
        async with serve(app) as http:
            yield Beats(http=http, stack=stack, names=names, beat=beat, watchdog=watchdog)


async def triggered(incident: WorkflowHandle[Any, Any]) -> IncidentSnapshot | None:
    """The incident's state once its trigger is written (numbered, first event)."""
    snapshot = await incident.query(IncidentWorkflow.state)
    return snapshot if snapshot.timeline and snapshot.number else None


def watchdog_alert(status: str = "firing") -> dict[str, Any]:
    """Alertmanager's Watchdog alert (kube-prometheus's always-firing rule)."""
    return {
        "status": status,
        "labels": {"alertname": "Watchdog", "severity": "none", "prometheus": "monitoring/k8s"},
        "annotations": {"summary": "An alert that should always be firing."},
        "startsAt": "2026-03-02T09:30:12.345Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph",
        "fingerprint": "e2e6b4f8a1c3d5b7",
    }


async def test_pings_keep_it_quiet_a_miss_opens_one_incident_pings_resolve_it(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with heartbeat_stack(temporal_client, database_url, task_queue) as b:
        url = f"/api/v1/heartbeats/{b.beat}"
        first = await b.http.post(url, headers=b.auth())
        assert first.status_code == 202, first.text
        body = first.json()
        assert body["pinged"] is True and body["service"] == b.names.service
        assert body["workflow_id"] == f"heartbeat:{b.beat}"

        # pinging every half second for longer than two deadlines: no incident
        quiet_until = time.monotonic() + 2 * (INTERVAL + GRACE)
        pings = 1
        while time.monotonic() < quiet_until:
            await asyncio.sleep(0.5)  # the pinger's own pace, not a wait for a result
            sent = await b.http.post(url, headers=b.auth(), json={"message": f"run {pings}"})
            assert sent.status_code == 202, sent.text
            pings += 1
        state = await b.state(b.beat)
        assert state.pings == pings
        assert state.incidents == 0 and state.incident_workflow_id is None
        assert await b.incident_rows() == []

        # the pings stop: one incident, from the heartbeat, with a page
        async def missed() -> HeartbeatState | None:
            s = await b.state(b.beat)
            return s if s.incident_workflow_id else None

        state = await wait_for(missed, timeout=30, message="the missed heartbeat's incident")
        assert state.incidents == 1
        listed = await b.listing()
        assert listed[b.beat]["status"] == "missed"
        assert listed[b.beat]["incident_workflow_id"] == state.incident_workflow_id
        assert listed[b.watchdog]["status"] == "never_pinged"
        assert state.incident_workflow_id is not None
        incident = b.stack.temporal.get_workflow_handle(state.incident_workflow_id)
        snapshot = await wait_for(lambda: triggered(incident), message="the incident's trigger")
        assert snapshot.source == "heartbeat"
        assert snapshot.title == f"Heartbeat {b.beat} missed"
        assert snapshot.severity.value == "SEV2"
        assert snapshot.details["heartbeat"] == b.beat
        assert snapshot.details["last_message"] == f"run {pings - 1}"
        assert snapshot.timeline[0].actor == "incidentflow"
        number = snapshot.number

        async def ticket(status: str) -> list[dict[str, Any]]:
            rows = await b.incident_rows()
            return rows if rows and rows[0]["status"] == status else []

        rows = await wait_for(lambda: ticket("triggered"), timeout=20, message="ticket row")
        assert [(r["number"], r["source"]) for r in rows] == [(number, "heartbeat")]
        assert rows[0]["dedup_key"].startswith(f"heartbeat:{b.beat}:")
        pages = await wait_for(
            lambda: b.stack.notified(number), timeout=20, message="the page of the new incident"
        )
        assert {p["event_kind"] for p in pages} == {"triggered"}

        # pings resume: the incident resolves (the alert cleared), and no second one opens
        again = await b.http.post(url, headers=b.auth())
        assert again.status_code == 202, again.text
        rows = await wait_for(lambda: ticket("resolved"), timeout=20, message="resolution")
        assert [r["number"] for r in rows] == [number]
        resolved = await incident.query(IncidentWorkflow.state)
        assert [e.kind.value for e in resolved.timeline][-2:] == ["alert_cleared", "resolved"]
        state = await b.state(b.beat)
        assert state.incident_workflow_id is None and state.incidents == 1
        listed = await b.listing()
        assert listed[b.beat]["status"] == "ok"
        assert (listed[b.beat]["pings"], listed[b.beat]["incidents"]) == (pings + 1, 1)
        assert listed[b.beat]["interval_seconds"] == INTERVAL
        await record_workflow_history(
            b.stack.temporal, heartbeat_workflow_id(b.beat), "heartbeat_missed_then_resumed"
        )


async def test_alertmanager_watchdog_pings_and_its_silence_opens_an_incident(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with heartbeat_stack(temporal_client, database_url, task_queue) as b:
        url = f"/api/v1/heartbeats/{b.watchdog}/alertmanager"
        payload = alertmanager_payload([watchdog_alert()])
        payload["someFutureField"] = True  # Alertmanager's body: unknown fields are ignored
        sent = await b.http.post(url, headers=b.auth(), json=payload)
        assert sent.status_code == 202, sent.text
        assert sent.json()["pinged"] is True and sent.json()["source"] == "alertmanager"
        state = await b.state(b.watchdog)
        assert state.pings == 1

        # a resolved-only notification is no ping: the Watchdog stopped firing
        resolved = alertmanager_payload([watchdog_alert("resolved")], status="resolved")
        quiet = await b.http.post(url, headers=b.auth(), json=resolved)
        assert quiet.status_code == 202, quiet.text
        assert quiet.json()["pinged"] is False
        assert (await b.state(b.watchdog)).pings == 1

        async def missed() -> HeartbeatState | None:
            s = await b.state(b.watchdog)
            return s if s.incident_workflow_id else None

        state = await wait_for(missed, timeout=30, message="the silent watchdog's incident")
        assert state.incident_workflow_id is not None
        incident = b.stack.temporal.get_workflow_handle(state.incident_workflow_id)
        snapshot = await wait_for(lambda: triggered(incident), message="the incident's trigger")
        assert snapshot.title == "Prometheus watchdog silent"
        assert snapshot.details["last_source"] == "alertmanager"
        assert snapshot.details["last_message"] == "Watchdog"

        # Alertmanager is back
        back = await b.http.post(
            url, headers=b.auth(), json=alertmanager_payload([watchdog_alert()])
        )
        assert back.status_code == 202

        async def resolved_incident() -> bool:
            return (await incident.query(IncidentWorkflow.state)).status.value == "resolved"

        await wait_for(resolved_incident, timeout=20, message="the watchdog incident resolved")


async def test_refusals_change_nothing(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with heartbeat_stack(temporal_client, database_url, task_queue) as b:
        url = f"/api/v1/heartbeats/{b.beat}"
        unknown = await b.http.post("/api/v1/heartbeats/no-such-beat", headers=b.auth())
        assert unknown.status_code == 404, unknown.text
        assert unknown.json()["error"] == "not_found"
        assert "no-such-beat" in unknown.json()["message"]
        unknown_am = await b.http.post(
            "/api/v1/heartbeats/no-such-beat/alertmanager",
            headers=b.auth(),
            json=alertmanager_payload([watchdog_alert()]),
        )
        assert unknown_am.status_code == 404, unknown_am.text
        wrong_scope = await b.http.post(url, headers=b.auth("read"))
        assert wrong_scope.status_code == 403, wrong_scope.text
        assert (await b.http.post(url)).status_code == 401
        extra = await b.http.post(url, headers=b.auth(), json={"message": "hi", "bogus": 1})
        assert extra.status_code == 422, extra.text
        assert "bogus" in extra.text
        not_am = await b.http.post(f"{url}/alertmanager", headers=b.auth(), json={"alerts": []})
        assert not_am.status_code == 422, not_am.text
        listing = await b.http.get("/api/v1/heartbeats", headers=b.auth("ingest"))
        assert listing.status_code == 403, listing.text
        # the admin scope implies ingest; a respond-only token does not
        assert (await b.http.post(url, headers=b.auth("respond"))).status_code == 403
        assert not await workflow_exists(b.stack.temporal, heartbeat_workflow_id(b.beat))
        assert not await workflow_exists(b.stack.temporal, "heartbeat:no-such-beat")
        assert await b.incident_rows() == []


async def test_continue_as_new_keeps_the_clock_and_the_count(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    """Pings are frequent: a run hands over after ``pings_per_run`` of them, carrying its
    state, and the next run still opens the incident when pings stop."""
    async with heartbeat_stack(temporal_client, database_url, task_queue) as b:
        stack = b.stack
        heartbeat = stack.policy.heartbeat(b.beat)
        assert heartbeat is not None
        service = stack.policy.service(b.names.service)
        assert service is not None
        alert = build_alert(
            stack.policy,
            title=heartbeat.incident_title,
            service=heartbeat.service,
            labels={"heartbeat": b.beat},
            source="heartbeat",
            actor="incidentflow",  # type: ignore[arg-type]
        )
        config = HeartbeatConfig(
            heartbeat=heartbeat, alert=alert, policy=stack.client.incident_policy(service)
        )
        workflow_id = heartbeat_workflow_id(b.beat)
        first_run = ""
        for _ in range(5):
            handle = await stack.temporal.start_workflow(
                HeartbeatWorkflow.run,
                HeartbeatStart(config=config, pings_per_run=2),
                id=workflow_id,
                task_queue=stack.task_queue,
                start_signal="ping",
                start_signal_args=[HeartbeatPing(config=config)],
            )
            first_run = first_run or (handle.first_execution_run_id or "")

        async def counted() -> HeartbeatState | None:
            s = await b.state(b.beat)
            return s if s.pings == 5 else None

        await wait_for(counted, timeout=20, message="five pings counted across runs")
        described = await stack.temporal.get_workflow_handle(workflow_id).describe()
        assert described.run_id != first_run  # it continued as new

        async def missed() -> HeartbeatState | None:
            s = await b.state(b.beat)
            return s if s.incident_workflow_id else None

        state = await wait_for(missed, timeout=30, message="the incident after continue-as-new")
        assert state.incidents == 1 and state.pings == 5


def test_policy_checks_heartbeats() -> None:
    policy, names = api_policy()
    data = policy.model_dump(mode="json")
    good = {"name": "backup", "service": names.service, "interval": "5m", "grace": "30s"}
    ok = Policy.model_validate({**data, "heartbeats": [good]})
    beat = ok.heartbeat("backup")
    assert beat is not None and beat.deadline == timedelta(minutes=5, seconds=30)
    assert beat.incident_title == "Heartbeat backup missed"
    cases = {
        "unknown service": ({**good, "service": "nope"}, "heartbeats.0.service: unknown service"),
        "too short": ({**good, "interval": "10ms"}, "interval must be at least 1s"),
        "bad name": ({**good, "name": "a b"}, "heartbeats.0.name"),
        "unknown field": ({**good, "every": "5m"}, "heartbeats.0.every"),
    }
    for case, (entry, message) in cases.items():
        with pytest.raises(ValidationError) as raised:
            Policy.model_validate({**data, "heartbeats": [entry]})
        assert message in str(raised.value).replace("\n  ", " ").replace("\n", " "), case
    with pytest.raises(ValidationError, match=re.escape("heartbeats.1.name: duplicate name")):
        Policy.model_validate({**data, "heartbeats": [good, good]})


def test_policy_file_names_the_line_of_a_bad_heartbeat(tmp_path: Path) -> None:
    """``policy check`` reports a heartbeat's error on its line, like any other."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert [b.name for b in load_policy(EXAMPLE).heartbeats] == [
        "prometheus-watchdog",
        "nightly-etl",
    ]
    checked = run_cli("policy", "check", str(EXAMPLE))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.rstrip().endswith(", 2 heartbeats")
    broken = tmp_path / "policy.yaml"
    broken.write_text(
        text.replace(
            "service: data-pipeline\n    interval: 24h", "service: nope\n    interval: 24h"
        )
    )
    line = 1 + broken.read_text(encoding="utf-8").splitlines().index("    service: nope")
    with pytest.raises(PolicyError) as raised:
        load_policy(broken)
    assert f"policy.yaml:{line}: heartbeats.1.service: unknown service 'nope'" in str(raised.value)
