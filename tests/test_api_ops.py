"""Health, readiness, OpenAPI and Prometheus metrics."""

from __future__ import annotations

import logging

import pytest
from temporalio.client import Client

from schemas.policy_holder import policy_hash
from schemas.settings import Settings
from starter.api.app import create_app
from tests.conftest import wait_for
from tests.support_api import api_policy, api_stack, serve


async def test_health_readiness_and_openapi(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with api_stack(temporal_client, database_url, task_queue, start_worker=False) as api:
        assert (await api.http.get("/healthz")).json() == {"status": "ok"}
        ready = await api.http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "ready",
            "checks": {"temporal": "ok", "postgres": "ok"},
            "policy": policy_hash(api.app.state.policy),
        }
        spec = (await api.http.get("/openapi.json")).json()
        assert spec["components"]["securitySchemes"]["bearer"] == {
            "type": "http",
            "description": spec["components"]["securitySchemes"]["bearer"]["description"],
            "scheme": "bearer",
        }
        assert "/v2/enqueue" in spec["paths"]
        assert "/api/v1/incidents/{number}/status-updates" in spec["paths"]


async def test_metrics_count_requests_incidents_and_notifications(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with api_stack(temporal_client, database_url, task_queue) as api:

        async def sent_count() -> float:
            response = await api.http.get("/metrics", headers=api.auth("read"))
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            prefix = 'incidentflow_notifications{status="sent"} '
            lines = [x for x in response.text.splitlines() if x.startswith(prefix)]
            return float(lines[0].removeprefix(prefix)) if lines else 0.0

        before = await sent_count()
        created = await api.http.post(
            "/api/v1/incidents",
            json={"title": "metrics", "service": api.names.service, "severity": "SEV2"},
            headers=api.auth("ingest"),
        )
        assert created.status_code == 201
        await api.http.post(
            "/v2/enqueue",
            json={
                "routing_key": api.names.key,
                "event_action": "trigger",
                "payload": {"summary": "s", "source": "h", "severity": "critical"},
            },
        )
        await api.http.post(f"/api/v1/integrations/alertmanager/{api.names.key}", content=b"{")
        await api.http.get("/api/v1/incidents/INC-999999999999", headers=api.auth("read"))

        async def more_sent() -> bool:
            return await sent_count() > before

        # the new incident pages level 1 (alice, console channel): the outbox records it
        await wait_for(more_sent, timeout=20, message="a notification sent")
        text = (await api.http.get("/metrics", headers=api.auth("read"))).text
        assert (
            'incidentflow_http_requests_total{method="POST",route="/api/v1/incidents",'
            'status="201"} 1.0' in text
        )
        assert (
            'incidentflow_http_requests_total{method="GET",route="/api/v1/incidents/{number}",'
            'status="404"} 1.0' in text
        )
        assert (
            'incidentflow_http_requests_total{method="POST",'
            'route="/api/v1/integrations/alertmanager/{integration_key}",status="415"} 1.0' in text
        )
        assert 'incidentflow_incidents_opened_total{severity="SEV2",source="api"} 1.0' in text
        assert 'incidentflow_alerts_accepted_total{severity="SEV1",source="pagerduty"} 1.0' in text
        assert "incidentflow_http_request_duration_seconds_bucket" in text
        assert 'incidentflow_notifications{status="failed"}' in text
        assert "# TYPE incidentflow_notifications gauge" in text  # "pending" goes down
        assert api.names.key not in text  # routes are labelled by template, never raw path

        # a second app in the same process has its own registry
        policy, names = api_policy()
        other = create_app(Settings(database_url=database_url), policy, temporal=temporal_client)
        async with serve(other) as http:
            fresh = (await http.get("/metrics", headers=names.auth("read"))).text
        assert "incidentflow_incidents_opened_total{" not in fresh
        assert 'route="/api/v1/incidents",status="201"' not in fresh


def test_access_log_never_shows_an_integration_key(caplog: pytest.LogCaptureFixture) -> None:
    policy, names = api_policy()
    create_app(Settings(), policy)  # installs the filter on uvicorn's access logger
    access = logging.getLogger("uvicorn.access")
    path = f"/api/v1/integrations/alertmanager/{names.key}?group=true"
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        # uvicorn's own call: '%s - "%s %s HTTP/%s" %d'
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "POST", path, "1.1", 200)
    [record] = [r for r in caplog.records if r.name == "uvicorn.access"]
    line = record.getMessage()
    assert names.key not in line
    assert '"POST /api/v1/integrations/alertmanager/***?group=true HTTP/1.1" 200' in line
