"""Only a person acknowledges: integrations resolving an incident leave it unacknowledged, so
MTTA and ack compliance in the summary report count people only (PagerDuty's explicit
``acknowledge`` counts as the person who acknowledged in PagerDuty). Real stack: Temporal,
PostgreSQL, the API's Alertmanager and PagerDuty endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.client import Client

from tests.conftest import wait_for
from tests.support_api import ApiStack, alertmanager_alert, alertmanager_payload, api_stack
from tests.support_incidents import record_history

INCIDENTS = "/api/v1/incidents"


async def incident(api: ApiStack, number: str) -> dict[str, Any]:
    response = await api.http.get(f"{INCIDENTS}/{number}", headers=api.auth("read"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def status_is(api: ApiStack, number: str, status: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body = await incident(api, number)
        return body if body["status"] == status else None

    result: dict[str, Any] = await wait_for(probe, message=f"{number} {status}")
    return result


async def pagerduty(api: ApiStack, action: str, key: str) -> None:
    event: dict[str, Any] = {"routing_key": api.names.key, "event_action": action, "dedup_key": key}
    if action == "trigger":
        event["payload"] = {"summary": f"{key} failing", "source": "db-1", "severity": "critical"}
    response = await api.http.post("/v2/enqueue", json=event)
    assert response.status_code == 202, response.text


def tta(body: dict[str, Any]) -> float:
    delta = datetime.fromisoformat(body["acknowledged_at"]) - datetime.fromisoformat(
        body["created_at"]
    )
    return delta.total_seconds()


def actors(body: dict[str, Any], kind: str) -> list[str]:
    return [e["actor"] for e in body["timeline"] if e["kind"] == kind]


async def test_integrations_resolve_without_acknowledging_and_reports_count_people(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with api_stack(temporal_client, database_url, task_queue) as api:
        # 1. an Alertmanager alert fires and clears: auto-resolved, nobody acknowledged
        url = f"/api/v1/integrations/alertmanager/{api.names.key}"
        firing = alertmanager_alert("cafe0001", "web-1:8080")
        fired = await api.http.post(url, json=alertmanager_payload([firing]))
        assert fired.status_code == 202, fired.text
        am = await api.stack.client.open_incident_for_key(api.names.service, "cafe0001")
        assert am is not None
        clear = alertmanager_alert("cafe0001", "web-1:8080", status="resolved")
        cleared = await api.http.post(url, json=alertmanager_payload([clear], status="resolved"))
        assert cleared.json()["results"][0]["action"] == "cleared"
        am_body = await status_is(api, am, "resolved")
        assert am_body["acknowledged_at"] is None and am_body["resolved_at"] is not None
        assert am_body["deadlines"]["ack"] is None  # the ack clock stopped, neither met nor late
        assert am_body["responders"] == {} and am_body["participants"] == []
        assert actors(am_body, "alert_cleared") == actors(am_body, "resolved") == ["alertmanager"]
        assert actors(am_body, "acknowledged") == [] and actors(am_body, "sla_breached") == []
        await record_history(api.stack, am, "alert_clear_resolves_unacknowledged")

        # 2. PagerDuty triggers and resolves: the same, resolved by the integration
        await pagerduty(api, "trigger", "pd-resolve")
        pd_resolved = await api.stack.client.open_incident_for_key(api.names.service, "pd-resolve")
        assert pd_resolved is not None
        await pagerduty(api, "resolve", "pd-resolve")
        pd_resolved_body = await status_is(api, pd_resolved, "resolved")
        assert pd_resolved_body["acknowledged_at"] is None
        assert pd_resolved_body["responders"] == {} and pd_resolved_body["participants"] == []
        assert actors(pd_resolved_body, "resolved") == ["pagerduty"]

        # 3. PagerDuty acknowledges (someone did, in PagerDuty): that is the acknowledgement,
        #    by the integration, which makes no commander; the first person to act does
        await pagerduty(api, "trigger", "pd-ack")
        pd_acked = await api.stack.client.open_incident_for_key(api.names.service, "pd-ack")
        assert pd_acked is not None
        await pagerduty(api, "acknowledge", "pd-ack")
        pd_acked_body = await status_is(api, pd_acked, "acknowledged")
        assert pd_acked_body["acknowledged_at"] is not None
        assert pd_acked_body["deadlines"]["ack"] is None
        assert pd_acked_body["escalation"]["active"] is False
        assert pd_acked_body["responders"] == {} and pd_acked_body["participants"] == []
        assert actors(pd_acked_body, "acknowledged") == ["pagerduty"]
        mitigated = await api.http.post(
            f"{INCIDENTS}/{pd_acked}/mitigate", json=None, headers=api.auth("responder")
        )
        assert mitigated.status_code == 200, mitigated.text
        assert mitigated.json()["responders"] == {"commander": "bob"}
        assert mitigated.json()["participants"] == ["bob"]
        assert mitigated.json()["acknowledged_at"] == pd_acked_body["acknowledged_at"]
        await pagerduty(api, "resolve", "pd-ack")  # the alert recovers: auto-resolved
        pd_acked_body = await status_is(api, pd_acked, "resolved")
        assert pd_acked_body["acknowledged_at"] == mitigated.json()["acknowledged_at"]
        await record_history(api.stack, pd_acked, "pagerduty_acknowledge_then_person")

        # 4. a person opens one and another acknowledges it through the API
        created = await api.http.post(
            INCIDENTS,
            json={"title": "Checkout down", "service": api.names.service, "severity": "SEV1"},
            headers=api.auth("ingest"),
        )
        assert created.status_code == 201, created.text
        native = created.json()["number"]
        acked = await api.http.post(
            f"{INCIDENTS}/{native}/acknowledge", json=None, headers=api.auth("responder")
        )
        assert acked.status_code == 200, acked.text
        native_body = await incident(api, native)
        assert native_body["responders"] == {"commander": "bob"}
        assert actors(native_body, "triggered") == ["alice"]

        async def report() -> dict[str, Any] | None:
            response = await api.http.get(
                "/api/v1/reports/summary",
                params={"service": api.names.service},
                headers=api.auth("read"),
            )
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            written = body["by_status"] == {"resolved": 3, "acknowledged": 1}
            return body if written else None

        body = await wait_for(report, timeout=20, message="report sees all four incidents")
        assert body["total"] == 4 and body["by_severity"] == {"SEV1": 4}
        # MTTA: the PagerDuty acknowledge and the person's, not the two integration resolves
        expected = (tta(pd_acked_body) + tta(native_body)) / 2
        assert abs(body["mtta_seconds"] - expected) < 0.002, (body["mtta_seconds"], expected)
        sla = {(s["clock"], s["severity"]): s for s in body["sla"]}
        assert sla[("ack", "SEV1")] == {
            "clock": "ack",
            "severity": "SEV1",
            "met": 2,
            "breached": 0,
            "compliance": 1.0,
        }
        assert sla[("resolve", "SEV1")]["met"] == 3  # resolutions still count, whoever resolved
