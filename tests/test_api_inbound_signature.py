"""Inbound HMAC on the integration endpoints of a service with ``inbound_secret``."""

from __future__ import annotations

import json
import time
from typing import Any

from schemas.settings import Settings
from schemas.webhook_signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_webhook
from starter.api.app import create_app
from starter.client import incident_workflow_id
from tests.support_api import api_stack, serve
from tests.support_state import workflow_exists

SECRET = "inbound-test-secret"


def signed(body: bytes, *, at: float | None = None, secret: str = SECRET) -> dict[str, str]:
    stamp = str(int(at if at is not None else time.time()))
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign_webhook(secret, stamp, body),
    }


async def test_signed_requests_only_and_replays_refused(
    temporal_client: Any, database_url: str, task_queue: str
) -> None:
    async with api_stack(temporal_client, database_url, task_queue) as api:
        policy = api.app.state.policy
        services = [
            s.model_copy(update={"inbound_secret": SECRET})
            if s.name == api.names.other_service
            else s
            for s in policy.services
        ]
        secured = policy.model_copy(update={"services": services})
        settings = Settings(database_url=database_url, temporal_task_queue=task_queue)
        app = create_app(settings, secured, temporal=temporal_client)
        async with serve(app) as http:
            event = {
                "routing_key": api.names.other_key,
                "event_action": "trigger",
                "dedup_key": "signed-1",
                "payload": {"summary": "disk full", "source": "db1", "severity": "error"},
            }
            body = json.dumps(event).encode()
            # what an accepted trigger starts: the incident workflow of its alert key
            incident = incident_workflow_id(api.names.other_service, "signed-1")
            unsigned = await http.post(
                "/v2/enqueue", content=body, headers={"Content-Type": "application/json"}
            )
            assert unsigned.status_code == 401
            assert SIGNATURE_HEADER in unsigned.json()["message"]
            assert not await workflow_exists(temporal_client, incident), "unsigned"
            tampered = await http.post(
                "/v2/enqueue", content=body.replace(b"disk", b"DISK"), headers=signed(body)
            )
            assert tampered.status_code == 401
            assert not await workflow_exists(temporal_client, incident), "tampered"
            replayed = await http.post(
                "/v2/enqueue", content=body, headers=signed(body, at=time.time() - 301)
            )
            assert replayed.status_code == 401
            assert not await workflow_exists(temporal_client, incident), "replayed"
            wrong_key = await http.post(
                "/v2/enqueue", content=body, headers=signed(body, secret="other")
            )
            assert wrong_key.status_code == 401
            assert not await workflow_exists(temporal_client, incident), "wrong key"
            ok = await http.post("/v2/enqueue", content=body, headers=signed(body))
            assert ok.status_code == 202, ok.text
            assert ok.json()["dedup_key"] == "signed-1"
            assert await workflow_exists(temporal_client, incident)  # the probe sees a start
            # a service without a secret is unaffected
            plain = {**event, "routing_key": api.names.key, "dedup_key": "plain-1"}
            assert (await http.post("/v2/enqueue", json=plain)).status_code == 202
            alerts = {
                "version": "4",
                "status": "firing",
                "receiver": "x",
                "groupKey": "g",
                "alerts": [
                    {
                        "status": "firing",
                        "labels": {"alertname": "A"},
                        "annotations": {},
                        "fingerprint": "f1",
                    }
                ],
            }
            am_body = json.dumps(alerts).encode()
            url = f"/api/v1/integrations/alertmanager/{api.names.other_key}"
            am_incident = incident_workflow_id(api.names.other_service, "f1")  # the fingerprint
            assert (
                await http.post(url, content=am_body, headers={"Content-Type": "application/json"})
            ).status_code == 401
            assert not await workflow_exists(temporal_client, am_incident)
            am_ok = await http.post(url, content=am_body, headers=signed(am_body))
            assert am_ok.status_code == 202, am_ok.text
            assert await workflow_exists(temporal_client, am_incident)
