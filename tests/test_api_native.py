"""Native REST API against the real stack: create → acknowledge → resolve, listings, reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio.client import Client

from tests.conftest import wait_for
from tests.support_api import ApiStack, api_stack

INCIDENTS = "/api/v1/incidents"


async def create(api: ApiStack, **body: Any) -> httpx.Response:
    body.setdefault("service", api.names.service)
    return await api.http.post(INCIDENTS, json=body, headers=api.auth("ingest"))


async def get(api: ApiStack, number: str, suffix: str = "") -> httpx.Response:
    return await api.http.get(f"{INCIDENTS}/{number}{suffix}", headers=api.auth("read"))


async def act(api: ApiStack, number: str, action: str, body: Any = None) -> httpx.Response:
    return await api.http.post(
        f"{INCIDENTS}/{number}/{action}", json=body, headers=api.auth("responder")
    )


async def listed(api: ApiStack, **params: Any) -> dict[str, Any]:
    params.setdefault("service", api.names.service)
    response = await api.http.get(INCIDENTS, params=params, headers=api.auth("read"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_acknowledge_resolve_reflected_in_get_and_timeline(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with api_stack(temporal_client, database_url, task_queue) as api:
        first = await create(
            api,
            title="Checkout error rate above 5%",
            dedup_key="checkout-5xx",
            labels={"env": "prod"},
            links=[{"href": "https://grafana.example/d/checkout", "text": "Dashboard"}],
        )
        assert first.status_code == 201, first.text
        ref = first.json()
        number = ref["number"]
        assert ref["created"] is True
        assert first.headers["location"] == f"/api/v1/incidents/{number}"

        again = await create(api, title="Checkout error rate above 5%", dedup_key="checkout-5xx")
        assert again.status_code == 200
        assert again.json()["number"] == number
        assert again.json()["created"] is False
        assert again.headers["location"] == f"/api/v1/incidents/{number}"

        got = await get(api, number)
        assert got.status_code == 200
        assert got.headers["x-incident-source"] == "live"
        incident = got.json()
        assert incident["status"] == "triggered"
        assert incident["alert_count"] == 2
        assert incident["urgency"] == "high"  # the env=prod classification rule
        assert incident["severity"] == "SEV2"  # medium impact x high urgency = P2
        assert incident["links"] == [
            {"href": "https://grafana.example/d/checkout", "text": "Dashboard"}
        ]

        acked = await act(api, number, "acknowledge", {"note": "looking"})
        assert acked.status_code == 200, acked.text
        assert acked.json()["status"] == "acknowledged"
        incident = (await get(api, number)).json()
        assert incident["status"] == "acknowledged"
        assert incident["responders"] == {"commander": "bob"}  # the token's user is the actor

        resolved = await act(api, number, "resolve", {"resolution": "rolled back"})
        assert resolved.status_code == 200, resolved.text
        incident = (await get(api, number)).json()
        assert incident["status"] == "resolved"
        assert incident["resolved_at"] is not None

        timeline = await get(api, number, "/timeline")
        assert timeline.status_code == 200
        body = timeline.json()
        assert body["number"] == number and body["status"] == "resolved"
        kinds = [(e["kind"], e["actor"]) for e in body["events"]]
        assert ("triggered", "alice") in kinds
        assert ("alert_repeated", "alice") in kinds
        assert ("acknowledged", "bob") in kinds
        assert ("resolved", "bob") in kinds
        ack = next(e for e in body["events"] if e["kind"] == "acknowledged")
        assert ack["details"] == {"note": "looking"}
        seqs = [e["seq"] for e in body["events"]]
        assert seqs == sorted(seqs)


async def test_every_action_route_reaches_its_update(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with api_stack(temporal_client, database_url, task_queue) as api:
        number = (await create(api, title="Disk full", labels={"alertname": "DiskFull"})).json()[
            "number"
        ]
        other = (await create(api, title="duplicate of the disk alert")).json()["number"]
        steps: list[tuple[str, dict[str, Any] | None, str]] = [
            ("assign", {"role": "assignee", "user": "carol"}, "triggered"),
            ("severity", {"severity": "SEV1", "reason": "customers affected"}, "triggered"),
            ("escalate", {"reason": "need storage team"}, "triggered"),
            ("investigate", None, "investigating"),
            ("notes", {"text": "found a runaway log"}, "investigating"),
            ("status-updates", {"text": "mitigation under way"}, "investigating"),
            ("mitigate", {"note": "log rotated"}, "mitigated"),
            ("resolve", {}, "resolved"),
            ("reopen", {"reason": "back again"}, "triggered"),
            ("resolve", None, "resolved"),
            ("close", {"reason": "done"}, "closed"),
        ]
        for action, body, status in steps:
            response = await act(api, number, action, body)
            assert response.status_code == 200, (action, response.text)
            assert response.json()["status"] == status, action
        merged = await act(api, other, "merge", {"into": number})
        assert merged.status_code == 200 and merged.json()["merged_into"] == number
        third = (await create(api, title="false alarm")).json()["number"]
        cancelled = await act(api, third, "cancel", {"reason": "test alert"})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "closed"

        async def from_ticket() -> dict[str, Any] | None:
            response = await get(api, number)
            if response.headers.get("x-incident-source") != "ticket":
                return None
            body: dict[str, Any] = response.json()
            return body

        # Closed: the run completes, and the ticket in PostgreSQL answers from then on.
        ticket = await wait_for(from_ticket, timeout=20, message="ticket served")
        assert ticket["status"] == "closed"
        assert ticket["severity"] == "SEV1"
        assert ticket["category"] == "hardware"  # alertname=Disk.* rule
        assert ticket["responders"]["assignee"] == "carol"
        kinds = [e["kind"] for e in ticket["timeline"]]
        for kind in (
            "assigned",
            "severity_changed",
            "escalated",
            "investigating",
            "note_added",
            "status_update_posted",
            "mitigated",
            "reopened",
            "closed",
        ):
            assert kind in kinds, kind
        timeline = await get(api, number, "/timeline")
        assert timeline.headers["x-incident-source"] == "ticket"
        assert [e["kind"] for e in timeline.json()["events"]] == kinds


async def test_list_filters_and_cursor_pagination(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with api_stack(temporal_client, database_url, task_queue) as api:
        started = datetime.now(UTC)
        numbers = []
        for i, severity in enumerate(["SEV1", "SEV2", "SEV2", "SEV3", "SEV4"]):
            response = await create(api, title=f"incident {i}", severity=severity)
            numbers.append(response.json()["number"])
        response = await create(api, title="elsewhere", service=api.names.other_service)
        elsewhere = response.json()["number"]
        await act(api, numbers[1], "acknowledge")

        async def recorded() -> bool:
            page = await listed(api, limit=50)
            statuses = {i["number"]: i["status"] for i in page["items"]}
            return len(statuses) == 5 and statuses[numbers[1]] == "acknowledged"

        await wait_for(recorded, timeout=20, message="tickets recorded")

        everything = await listed(api, limit=50)
        assert [i["number"] for i in everything["items"]] == list(reversed(numbers))
        assert everything["next_cursor"] is None

        pages, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = await listed(api, **params)
            pages.append([i["number"] for i in page["items"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == [
            [numbers[4], numbers[3]],
            [numbers[2], numbers[1]],
            [numbers[0]],
        ]

        sev2 = await listed(api, severity="SEV2")
        assert {i["number"] for i in sev2["items"]} == {numbers[1], numbers[2]}
        both = await listed(api, severity=["SEV1", "SEV4"])
        assert {i["number"] for i in both["items"]} == {numbers[0], numbers[4]}
        acked = await listed(api, status="acknowledged")
        assert [i["number"] for i in acked["items"]] == [numbers[1]]
        assert acked["items"][0]["commander"] == "bob"
        two_services = await listed(api, service=[api.names.service, api.names.other_service])
        assert len(two_services["items"]) == 6
        assert elsewhere in {i["number"] for i in two_services["items"]}

        later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        earlier = (started - timedelta(minutes=5)).isoformat()
        assert (await listed(api, since=later))["items"] == []
        assert (await listed(api, until=earlier))["items"] == []
        assert len((await listed(api, since=earlier, until=later))["items"]) == 5

        bad = await api.http.get(
            INCIDENTS, params={"cursor": "not-a-cursor"}, headers=api.auth("read")
        )
        assert bad.status_code == 422
        assert bad.json()["error"] == "validation_error"
        assert bad.json()["details"][0]["field"] == "query.cursor"


async def test_summary_report_counts_mtta_mttr_and_sla(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    # SEV3 (the default of medium impact x medium urgency) must be acknowledged within 3 s
    async with api_stack(
        temporal_client, database_url, task_queue, ack_within=3, level_delay=600
    ) as api:
        met = (await create(api, title="acknowledged in time")).json()["number"]
        assert (await act(api, met, "acknowledge")).status_code == 200
        late = (await create(api, title="acknowledged late")).json()["number"]
        hardware = (
            await create(api, title="disk", labels={"alertname": "DiskFull"}, severity="SEV4")
        ).json()["number"]

        async def breached() -> bool:
            rows = await api.stack.rows(
                "SELECT 1 FROM incident_events WHERE number = %s AND kind = 'sla_breached'", late
            )
            return bool(rows)

        await wait_for(breached, timeout=20, message="ack clock breached")
        assert (await act(api, late, "acknowledge")).status_code == 200
        assert (await act(api, met, "resolve")).status_code == 200
        assert (await act(api, late, "resolve")).status_code == 200

        async def report() -> dict[str, Any] | None:
            response = await api.http.get(
                "/api/v1/reports/summary",
                params={"service": api.names.service},
                headers=api.auth("read"),
            )
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            done = body["by_status"].get("resolved") == 2
            return body if done else None

        body = await wait_for(report, timeout=20, message="report sees both resolved")
        assert body["total"] == 3
        assert body["by_severity"] == {"SEV3": 2, "SEV4": 1}
        assert body["by_category"] == {"other": 2, "hardware": 1}
        assert body["by_service"] == {api.names.service: 3}
        assert body["mtta_seconds"] > 0 and body["mttr_seconds"] >= body["mtta_seconds"]
        sev3 = next(t for t in body["times_by_severity"] if t["severity"] == "SEV3")
        assert sev3["count"] == 2 and sev3["mtta_seconds"] > 0
        sla = {(s["clock"], s["severity"]): s for s in body["sla"]}
        assert sla[("ack", "SEV3")]["met"] == 1
        assert sla[("ack", "SEV3")]["breached"] == 1
        assert sla[("ack", "SEV3")]["compliance"] == 0.5
        assert sla[("resolve", "SEV3")] == {
            "clock": "resolve",
            "severity": "SEV3",
            "met": 2,
            "breached": 0,
            "compliance": 1.0,
        }
        # the SEV4 one is still open: its clocks count in neither column
        assert body["by_status"] == {"resolved": 2, "triggered": 1}
        assert sla[("resolve", "SEV4")] == {
            "clock": "resolve",
            "severity": "SEV4",
            "met": 0,
            "breached": 0,
            "compliance": None,
        }
        still_open = (await get(api, hardware)).json()
        assert (still_open["status"], still_open["severity"], still_open["category"]) == (
            "triggered",
            "SEV4",
            "hardware",
        )

        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        empty = await api.http.get(
            "/api/v1/reports/summary",
            params={"service": api.names.service, "since": future},
            headers=api.auth("read"),
        )
        assert empty.status_code == 200
        assert empty.json()["total"] == 0 and empty.json()["mtta_seconds"] is None
