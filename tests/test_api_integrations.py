"""Alertmanager webhook and PagerDuty Events API v2 endpoint, against the real stack."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from tests.conftest import wait_for
from tests.support_api import ApiStack, alertmanager_alert, alertmanager_payload, api_stack

PD_OK = {"status": "success", "message": "Event processed"}


async def counted(api: ApiStack, number: str, alerts: int) -> dict[str, Any]:
    """The incident once it has counted ``alerts`` (the fast path answers before that)."""

    async def probe() -> dict[str, Any] | None:
        body = await incident(api, number)
        return body if body["alert_count"] == alerts else None

    found: dict[str, Any] = await wait_for(probe, timeout=15, message=f"{alerts} alerts")
    return found


async def incident(api: ApiStack, number: str) -> dict[str, Any]:
    response = await api.http.get(f"/api/v1/incidents/{number}", headers=api.auth("read"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_alertmanager_group_of_two_then_one_resolved(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with api_stack(temporal_client, database_url, task_queue) as api:
        url = f"/api/v1/integrations/alertmanager/{api.names.key}"
        one = alertmanager_alert("8d3c1f2a9b7e6d54", "web-1:8080", env="prod")
        two = alertmanager_alert("1a2b3c4d5e6f7081", "web-2:8080", env="prod")
        payload = alertmanager_payload([one, two])
        payload["someFutureField"] = {"ignored": True}  # unknown fields are accepted
        first = await api.http.post(url, json=payload)
        assert first.status_code == 202, first.text
        results = first.json()["results"]
        assert [(r["dedup_key"], r["action"]) for r in results] == [
            ("8d3c1f2a9b7e6d54", "accepted"),
            ("1a2b3c4d5e6f7081", "accepted"),
        ]
        client = api.stack.client
        n1 = await client.open_incident_for_key(api.names.service, "8d3c1f2a9b7e6d54")
        n2 = await client.open_incident_for_key(api.names.service, "1a2b3c4d5e6f7081")
        assert n1 and n2 and n1 != n2

        got = await incident(api, n1)
        assert got["title"] == "5xx ratio above 5% on web-1:8080"
        assert got["severity"] == "SEV1"  # severity=critical label
        assert got["urgency"] == "high"  # env=prod classification rule
        assert got["source"] == "alertmanager"
        assert got["dedup_key"] == "8d3c1f2a9b7e6d54"
        assert got["labels"]["instance"] == "web-1:8080"
        assert {link["text"] for link in got["links"]} == {"Source", "Runbook", "Alertmanager"}
        assert got["description"].startswith("More than 5%")

        # Alertmanager re-sends the group: both still firing → repeats, not new incidents
        again = await api.http.post(url, json=alertmanager_payload([one, two]))
        assert [r["action"] for r in again.json()["results"]] == ["accepted", "accepted"]
        await counted(api, n1, 2)
        await counted(api, n2, 2)

        # then web-2 recovers
        two_resolved = alertmanager_alert(
            "1a2b3c4d5e6f7081", "web-2:8080", status="resolved", env="prod"
        )
        third = await api.http.post(url, json=alertmanager_payload([one, two_resolved]))
        assert third.status_code == 202
        assert [(r["dedup_key"], r["action"]) for r in third.json()["results"]] == [
            ("8d3c1f2a9b7e6d54", "accepted"),
            ("1a2b3c4d5e6f7081", "cleared"),
        ]
        await counted(api, n1, 3)

        async def cleared() -> dict[str, Any] | None:
            body = await incident(api, n2)
            return body if body["status"] == "resolved" else None

        second = await wait_for(cleared, timeout=15, message="web-2 incident cleared")
        assert second["alert_cleared"] is True
        assert [e["kind"] for e in second["timeline"]][-2:] == ["alert_cleared", "resolved"]
        assert (await incident(api, n1))["status"] == "triggered"

        listing = await api.http.get(
            "/api/v1/incidents", params={"service": api.names.service}, headers=api.auth("read")
        )

        async def both_listed() -> bool:
            response = await api.http.get(
                "/api/v1/incidents",
                params={"service": api.names.service},
                headers=api.auth("read"),
            )
            return {i["number"] for i in response.json()["items"]} == {n1, n2}

        await wait_for(both_listed, timeout=15, message="two tickets")
        assert listing.status_code == 200


async def test_alertmanager_group_mode_and_bad_requests(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with api_stack(temporal_client, database_url, task_queue) as api:
        url = f"/api/v1/integrations/alertmanager/{api.names.key}"
        alerts = [
            alertmanager_alert("f1", "web-1:8080"),
            alertmanager_alert("f2", "web-2:8080"),
        ]
        payload = alertmanager_payload(alerts)
        payload["commonAnnotations"] = {"summary": "Checkout 5xx on 2 instances"}
        grouped = await api.http.post(url, params={"group": "true"}, json=payload)
        assert grouped.status_code == 202, grouped.text
        [result] = grouped.json()["results"]
        assert result["action"] == "accepted"
        assert result["dedup_key"] == payload["groupKey"]
        number = await api.stack.client.open_incident_for_key(
            api.names.service, payload["groupKey"]
        )
        assert number is not None
        got = await incident(api, number)
        assert got["title"] == "Checkout 5xx on 2 instances"
        assert got["severity"] == "SEV1"
        assert got["details"]["alerts_firing"] == 2

        resolved = alertmanager_payload(
            [
                alertmanager_alert(f, i, status="resolved")
                for f, i in (("f1", "web-1"), ("f2", "web-2"))
            ],
            status="resolved",
        )
        done = await api.http.post(url, params={"group": "true"}, json=resolved)
        assert done.json()["results"][0]["action"] == "cleared"

        async def cleared() -> bool:
            return (await incident(api, number))["status"] == "resolved"

        await wait_for(cleared, timeout=15, message="group cleared")

        nothing = await api.http.post(
            url,
            json=alertmanager_payload(
                [alertmanager_alert("never-fired", "web-9", status="resolved")], status="resolved"
            ),
        )
        assert nothing.json()["results"][0]["action"] == "no_open_incident"

        wrong_key = await api.http.post("/api/v1/integrations/alertmanager/not-a-key", json=payload)
        assert wrong_key.status_code == 401
        assert wrong_key.json() == {
            "error": "unauthorized",
            "message": "unknown integration key",
            "details": None,
        }
        v3 = await api.http.post(url, json={**payload, "version": "3"})
        assert v3.status_code == 422
        assert v3.json()["details"][0]["field"] == "version"
        # a bearer token is neither needed nor a substitute for the key
        assert (
            await api.http.post(
                "/api/v1/integrations/alertmanager/x", json=payload, headers=api.auth("admin")
            )
        ).status_code == 401


async def test_pagerduty_trigger_twice_acknowledge_resolve(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with api_stack(temporal_client, database_url, task_queue) as api:
        event = {
            "routing_key": api.names.other_key,
            "event_action": "trigger",
            "dedup_key": "srv01/disk",
            "payload": {
                "summary": "DISK at 99% on machine prod-datapipe03.example.com",
                "timestamp": "2026-03-02T09:30:00.000+00:00",
                "severity": "error",
                "source": "prod-datapipe03.example.com",
                "component": "mysql",
                "group": "prod-datapipe",
                "class": "disk",
                "custom_details": {"free space": "1%", "ping time": "1500ms"},
            },
            "images": [{"src": "https://chart.example/disk.png", "href": "https://x", "alt": "d"}],
            "links": [{"href": "https://runbook.example/disk", "text": "Runbook"}],
            "client": "Sample Monitoring Service",
            "client_url": "https://monitoring.example.com",
        }
        first = await api.http.post("/v2/enqueue", json=event)
        assert first.status_code == 202
        assert first.json() == {**PD_OK, "dedup_key": "srv01/disk"}
        second = await api.http.post("/v2/enqueue", json=event)
        assert second.status_code == 202
        assert second.json() == {**PD_OK, "dedup_key": "srv01/disk"}

        number = await api.stack.client.open_incident_for_key(api.names.other_service, "srv01/disk")
        assert number is not None
        got = await counted(api, number, 2)
        assert got["severity"] == "SEV2"  # error → SEV2
        assert got["source"] == "pagerduty"
        assert got["labels"] == {
            "source": "prod-datapipe03.example.com",
            "severity": "error",
            "component": "mysql",
            "group": "prod-datapipe",
            "class": "disk",
        }
        assert got["details"]["custom_details"] == {"free space": "1%", "ping time": "1500ms"}
        assert got["details"]["images"][0]["src"] == "https://chart.example/disk.png"
        assert {(link["href"], link["text"]) for link in got["links"]} == {
            ("https://runbook.example/disk", "Runbook"),
            ("https://monitoring.example.com", "Sample Monitoring Service"),
        }

        ack = {
            "routing_key": api.names.other_key,
            "event_action": "acknowledge",
            "dedup_key": "srv01/disk",
        }
        acked = await api.http.post("/v2/enqueue", json=ack)
        assert (acked.status_code, acked.json()) == (202, {**PD_OK, "dedup_key": "srv01/disk"})
        got = await incident(api, number)
        assert got["status"] == "acknowledged"
        assert any(
            e["kind"] == "acknowledged" and e["actor"] == "pagerduty" for e in got["timeline"]
        )
        acked_again = await api.http.post("/v2/enqueue", json=ack)
        assert acked_again.status_code == 202  # nothing to do is not an error for PagerDuty

        resolved = await api.http.post("/v2/enqueue", json={**ack, "event_action": "resolve"})
        assert (resolved.status_code, resolved.json()) == (
            202,
            {**PD_OK, "dedup_key": "srv01/disk"},
        )
        assert (await incident(api, number))["status"] == "resolved"

        # acknowledge/resolve of a key with no open incident: 202 and nothing changes
        for action in ("acknowledge", "resolve"):
            ghost = await api.http.post(
                "/v2/enqueue", json={**ack, "event_action": action, "dedup_key": "never-seen"}
            )
            assert (ghost.status_code, ghost.json()) == (202, {**PD_OK, "dedup_key": "never-seen"})
        assert (
            await api.stack.client.open_incident_for_key(api.names.other_service, "never-seen")
            is None
        )

        fresh = await api.http.post("/v2/enqueue", json={**event, "dedup_key": None})
        assert fresh.status_code == 202
        generated = fresh.json()["dedup_key"]
        assert len(generated) == 32 and generated != "srv01/disk"
        assert await api.stack.client.open_incident_for_key(api.names.other_service, generated)


async def test_pagerduty_invalid_events_answer_400_with_errors(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with api_stack(temporal_client, database_url, task_queue, start_worker=False) as api:
        payload = {"summary": "s", "source": "h", "severity": "critical"}

        no_key = await api.http.post(
            "/v2/enqueue", json={"event_action": "trigger", "payload": payload}
        )
        assert no_key.status_code == 400
        assert no_key.json() == {
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": ["'routing_key' is missing or blank"],
        }

        bad_action = await api.http.post(
            "/v2/enqueue",
            json={"routing_key": api.names.key, "event_action": "explode", "payload": payload},
        )
        assert bad_action.status_code == 400
        body = bad_action.json()
        assert body["status"] == "invalid event" and body["message"] == "Event object is invalid"
        assert len(body["errors"]) == 1 and body["errors"][0].startswith(
            "'event_action' is invalid"
        )

        bad_severity = await api.http.post(
            "/v2/enqueue",
            json={
                "routing_key": api.names.key,
                "event_action": "trigger",
                "payload": {**payload, "severity": "apocalyptic"},
            },
        )
        assert bad_severity.status_code == 400
        assert bad_severity.json()["errors"][0].startswith("'payload.severity' is invalid")

        no_payload = await api.http.post(
            "/v2/enqueue", json={"routing_key": api.names.key, "event_action": "trigger"}
        )
        assert no_payload.status_code == 400
        assert no_payload.json()["errors"] == ["'payload' is missing or blank"]

        no_dedup = await api.http.post(
            "/v2/enqueue", json={"routing_key": api.names.key, "event_action": "resolve"}
        )
        assert no_dedup.status_code == 400
        assert no_dedup.json()["errors"] == ["'dedup_key' is missing or blank"]

        unknown = await api.http.post(
            "/v2/enqueue",
            json={"routing_key": "no-such-key", "event_action": "trigger", "payload": payload},
        )
        assert unknown.status_code == 400
        assert unknown.json() == {
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": ["'routing_key' is not a known integration key"],
        }
        assert "no-such-key" not in unknown.text
