"""Every error the API promises, each asserted with its body: 401 403 404 409 413 415 422 429
503, and bad input (broken JSON, bad UTF-8, deep nesting) that must never reach a 500; NUL
and lone surrogates are stored as U+FFFD."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from schemas.enums import Action, Status
from schemas.lifecycle import rejection_message
from schemas.settings import Settings
from schemas.webhook_signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_webhook
from starter.api.app import create_app
from starter.api.context import ApiOptions
from starter.client import incident_workflow_id
from tests.support_api import api_policy, api_stack, serve
from tests.support_state import started_on, workflow_exists
from worker.devinfra import temporal_binary

INCIDENTS = "/api/v1/incidents"


def error(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message", "details"}, body
    return body


async def test_401_without_or_with_a_wrong_token(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with api_stack(temporal_client, database_url, task_queue, start_worker=False) as api:
        missing = await api.http.get(INCIDENTS)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == 'Bearer realm="incidentflow"'
        assert error(missing)["error"] == "unauthorized"
        assert "missing bearer token" in error(missing)["message"]

        secret = "not-a-real-token-" + "x" * 20
        wrong = await api.http.get(INCIDENTS, headers={"Authorization": f"Bearer {secret}"})
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"] == (
            'Bearer realm="incidentflow", error="invalid_token"'
        )
        assert error(wrong) == {
            "error": "unauthorized",
            "message": "invalid bearer token",
            "details": None,
        }
        assert secret not in wrong.text

        basic = await api.http.get(INCIDENTS, headers={"Authorization": "Basic YWxpY2U6cHc="})
        assert basic.status_code == 401

        forbidden = await api.http.get(INCIDENTS, headers=api.auth("ingest"))
        assert forbidden.status_code == 403
        assert error(forbidden) == {
            "error": "forbidden",
            "message": "token 'ingest' lacks the 'read' scope",
            "details": {"required_scope": "read"},
        }


async def test_404_409_and_422_with_their_bodies(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with api_stack(temporal_client, database_url, task_queue) as api:
        unknown = await api.http.get(f"{INCIDENTS}/INC-999999999999", headers=api.auth("read"))
        assert unknown.status_code == 404
        assert error(unknown) == {
            "error": "not_found",
            "message": "no incident INC-999999999999",
            "details": None,
        }
        unknown_act = await api.http.post(
            f"{INCIDENTS}/INC-999999999999/acknowledge", headers=api.auth("respond")
        )
        assert unknown_act.status_code == 404

        created = await api.http.post(
            INCIDENTS,
            json={"title": "db down", "service": api.names.service},
            headers=api.auth("ingest"),
        )
        number = created.json()["number"]
        first = await api.http.post(
            f"{INCIDENTS}/{number}/acknowledge", headers=api.auth("respond")
        )
        assert first.status_code == 200
        again = await api.http.post(
            f"{INCIDENTS}/{number}/acknowledge", headers=api.auth("respond")
        )
        assert again.status_code == 409
        assert error(again) == {
            "error": "action_rejected",
            "message": rejection_message(number, Action.ACKNOWLEDGE, Status.ACKNOWLEDGED),
            "details": None,
        }
        same_severity = await api.http.post(
            f"{INCIDENTS}/{number}/severity", json={"severity": "SEV3"}, headers=api.auth("respond")
        )
        assert same_severity.status_code in (409, 422)
        assert f"{number} is already SEV3" in error(same_severity)["message"]

        missing_title = await api.http.post(
            INCIDENTS, json={"service": api.names.service}, headers=api.auth("ingest")
        )
        assert missing_title.status_code == 422
        body = error(missing_title)
        assert body["error"] == "validation_error"
        assert body["details"] == [
            {
                "loc": ["body", "title"],
                "field": "title",
                "message": "Field required",
                "type": "missing",
            }
        ]

        bad_label = await api.http.post(
            INCIDENTS,
            json={"title": "x", "service": api.names.service, "labels": {"env": 1}, "nope": 1},
            headers=api.auth("ingest"),
        )
        assert bad_label.status_code == 422
        fields = {d["field"] for d in error(bad_label)["details"]}
        assert fields == {"labels.env", "nope"}

        bad_role = await api.http.post(
            f"{INCIDENTS}/{number}/assign",
            json={"role": "boss", "user": "carol"},
            headers=api.auth("respond"),
        )
        assert bad_role.status_code == 422
        assert [d["field"] for d in error(bad_role)["details"]] == ["role"]

        actor_given = await api.http.post(
            f"{INCIDENTS}/{number}/notes",
            json={"text": "hi", "actor": "mallory"},
            headers=api.auth("respond"),
        )
        assert actor_given.status_code == 422  # the actor is always the token's user
        assert [d["field"] for d in error(actor_given)["details"]] == ["actor"]

        empty_note = await api.http.post(f"{INCIDENTS}/{number}/notes", headers=api.auth("respond"))
        assert empty_note.status_code == 422
        assert error(empty_note)["details"][0]["type"] == "missing"

        bad_number = await api.http.get(f"{INCIDENTS}/INC-abc", headers=api.auth("read"))
        assert bad_number.status_code == 422
        assert error(bad_number)["details"][0]["field"] == "path.number"

        bad_limit = await api.http.get(INCIDENTS, params={"limit": 0}, headers=api.auth("read"))
        assert bad_limit.status_code == 422
        assert error(bad_limit)["details"][0]["field"] == "query.limit"

        unknown_service = await api.http.post(
            INCIDENTS, json={"title": "x", "service": "nope"}, headers=api.auth("ingest")
        )
        # which services exist is the policy's state: 404, as for an unknown incident
        assert unknown_service.status_code == 404
        assert error(unknown_service)["error"] == "unknown_service"

        no_service = await api.http.post(INCIDENTS, json={"title": "x"}, headers=api.auth("ingest"))
        assert no_service.status_code == 404
        assert error(no_service)["details"][0]["field"] == "service"

        # a classification rule may name the service instead
        routed = await api.http.post(
            INCIDENTS,
            json={"title": "x", "labels": {"team": "payments"}},
            headers=api.auth("ingest"),
        )
        assert routed.status_code == 201
        incident = await api.http.get(
            f"{INCIDENTS}/{routed.json()['number']}", headers=api.auth("read")
        )
        assert incident.json()["service"] == api.names.other_service
        assert incident.json()["category"] == "software"


BAD_BODIES: list[tuple[str, bytes, str, int, str]] = [
    ("broken JSON", b'{"title": "x",', "application/json", 400, "invalid_json"),
    ("invalid UTF-8", b'{"title": "\xff\xfe"}', "application/json", 400, "invalid_json"),
    ("NaN", b'{"title": "x", "details": {"v": NaN}}', "application/json", 400, "invalid_json"),
    (
        "huge exponent",
        b'{"title": "x", "details": {"v": 1e999}}',
        "application/json",
        400,
        "invalid_json",
    ),
    (
        "deep nesting",
        b'{"details": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "application/json",
        400,
        "invalid_json",
    ),
    (
        "moderate nesting",
        b'{"details": {"a": ' + b"[" * 40 + b"]" * 40 + b"}}",
        "application/json",
        400,
        "invalid_json",
    ),
    ("form body", b"title=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ("no content type", b'{"title": "x"}', "", 415, "unsupported_media_type"),
    ("JSON array", b"[1, 2]", "application/json", 422, "validation_error"),
]


@pytest.mark.parametrize(("case", "body", "content_type", "status", "code"), BAD_BODIES)
async def test_bad_bodies_are_refused_never_a_500(
    api_no_worker: Any, case: str, body: bytes, content_type: str, status: int, code: str
) -> None:
    api = api_no_worker
    headers = {**api.auth("admin")}
    if content_type:
        headers["Content-Type"] = content_type
    for path in (INCIDENTS, f"{INCIDENTS}/INC-1/notes"):
        response = await api.http.post(path, content=body, headers=headers)
        assert response.status_code == status, (case, path, response.text)
        assert error(response)["error"] == code, case
    # refused, so no incident workflow was started on this test's queue
    assert await started_on(api.stack.temporal, api.stack.task_queue) == [], case


async def test_bad_bodies_on_integrations_keep_their_shapes(api_no_worker: Any) -> None:
    api = api_no_worker
    am = await api.http.post(
        f"/api/v1/integrations/alertmanager/{api.names.key}",
        content=b"{oops",
        headers={"Content-Type": "application/json"},
    )
    assert am.status_code == 400 and error(am)["error"] == "invalid_json"
    pd = await api.http.post(
        "/v2/enqueue", content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert pd.status_code == 400
    assert pd.json() == {
        "status": "invalid event",
        "message": "request body is not valid JSON",
        "errors": ["request body is not valid JSON"],
    }


async def test_405_allows_every_method_the_path_documents(api_no_worker: Any) -> None:
    """Starlette names only the first route matching a path; GET and POST share this one."""
    api = api_no_worker
    documented = api.app.openapi()["paths"][INCIDENTS]
    for method in ("DELETE", "PUT", "OPTIONS"):
        response = await api.http.request(method, INCIDENTS, headers=api.auth("admin"))
        assert response.status_code == 405, method
        assert error(response)["error"] == "method_not_allowed"
        allowed = {m.strip().lower() for m in response.headers["allow"].split(",")}
        assert allowed == {*documented, "head"}, response.headers["allow"]


async def test_nul_and_lone_surrogates_are_stored_as_replacement_characters(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    """JSON may carry them, PostgreSQL and UTF-8 cannot: U+FFFD takes their place, so the
    request is accepted as the OpenAPI document promises, and a signature still covers the
    bytes as sent."""
    async with api_stack(temporal_client, database_url, task_queue) as api:
        body = (
            b'{"title": "a\\u0000b", "service": "%s", "labels": {"k\\u0000": "\\ud800"}}'
            % api.names.service.encode()
        )
        headers = {**api.auth("ingest"), "Content-Type": "application/json"}
        created = await api.http.post(INCIDENTS, content=body, headers=headers)
        assert created.status_code == 201, created.text
        number = created.json()["number"]
        incident = await api.http.get(f"{INCIDENTS}/{number}", headers=api.auth("read"))
        assert incident.json()["title"] == "a\ufffdb"
        assert incident.json()["labels"] == {"k\ufffd": "\ufffd"}

        policy = api.app.state.policy
        secret = "nul-test-secret"
        services = [s.model_copy(update={"inbound_secret": secret}) for s in policy.services]
        secured = policy.model_copy(update={"services": services})
        settings = Settings(database_url=database_url, temporal_task_queue=api.stack.task_queue)
        async with serve(create_app(settings, secured, temporal=temporal_client)) as http:
            event = (
                b'{"routing_key": "%s", "event_action": "trigger", "dedup_key": "nul-1",'
                b' "payload": {"summary": "disk\\u0000full", "source": "db", "severity": "info"}}'
                % api.names.other_key.encode()
            )
            stamp = str(int(time.time()))
            signed = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: stamp,
                SIGNATURE_HEADER: sign_webhook(secret, stamp, event),
            }
            accepted = await http.post("/v2/enqueue", content=event, headers=signed)
            assert accepted.status_code == 202, accepted.text
            workflow_id = incident_workflow_id(api.names.other_service, "nul-1")
            assert await workflow_exists(temporal_client, workflow_id)


@pytest.fixture
async def api_no_worker(
    temporal_client: Client, database_url: str, task_queue: str
) -> AsyncIterator[Any]:
    async with api_stack(temporal_client, database_url, task_queue, start_worker=False) as api:
        yield api


async def test_413_before_parsing_by_length_and_by_stream(api_no_worker: Any) -> None:
    api = api_no_worker
    temporal = api.stack.temporal

    def padded(body: dict[str, Any]) -> bytes:
        """``body``, valid, made too large with whitespace (JSON allows it between tokens):
        only the size limit stands between it and a new incident."""
        return json.dumps(body).encode() + b" " * (600 * 1024)

    big = padded({"title": "x", "service": api.names.service, "dedup_key": "too-big"})
    big_incident = incident_workflow_id(api.names.service, "too-big")
    declared = await api.http.post(
        INCIDENTS,
        content=big,
        headers={**api.auth("ingest"), "Content-Type": "application/json"},
    )
    assert declared.status_code == 413
    assert error(declared) == {
        "error": "payload_too_large",
        "message": f"request body is larger than {512 * 1024} bytes",
        "details": {"max_bytes": 512 * 1024},
    }
    assert not await workflow_exists(temporal, big_incident), "declared: an incident was started"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    streamed = await api.http.post(
        INCIDENTS,
        content=chunks(),
        headers={**api.auth("ingest"), "Content-Type": "application/json"},
    )
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413
    assert error(streamed)["error"] == "payload_too_large"
    assert not await workflow_exists(temporal, big_incident), "streamed: an incident was started"

    # no token needed to be refused for size: the body is never read past the limit
    event = {
        "routing_key": api.names.key,
        "event_action": "trigger",
        "dedup_key": "too-big-pd",
        "payload": {"summary": "disk full", "source": "db1", "severity": "error"},
    }
    anonymous = await api.http.post(
        "/v2/enqueue", content=padded(event), headers={"Content-Type": "application/json"}
    )
    assert anonymous.status_code == 413
    assert anonymous.json()["status"] == "invalid event"
    pd_incident = incident_workflow_id(api.names.service, "too-big-pd")
    assert not await workflow_exists(temporal, pd_incident), "enqueue: an incident was started"


async def test_429_per_token_with_retry_after(temporal_client: Client, database_url: str) -> None:
    policy, names = api_policy()
    settings = Settings(database_url=database_url)
    app = create_app(settings, policy, temporal=temporal_client, options=ApiOptions(rate_limit=3))
    async with serve(app) as http:
        for _ in range(3):
            ok = await http.get("/metrics", headers=names.auth("read"))
            assert ok.status_code == 200
        limited = await http.get("/metrics", headers=names.auth("read"))
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "20"  # one request's worth at 3/min
        assert limited.json() == {
            "error": "rate_limited",
            "message": "rate limit of 3 requests per minute exceeded",
            "details": {"retry_after_seconds": 20},
        }
        # another token has its own budget
        assert (await http.get("/metrics", headers=names.auth("admin"))).status_code == 200
        # so does an integration key; past it, PagerDuty's throttle answer
        event = {"routing_key": names.other_key, "event_action": "acknowledge", "dedup_key": "k"}
        answers = [(await http.post("/v2/enqueue", json=event)).status_code for _ in range(4)]
        assert answers == [202, 202, 202, 429]


async def test_rate_limit_from_the_environment_with_policy_overrides(
    temporal_client: Client, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """INCIDENTFLOW_RATE_LIMIT sets every credential's rate; the policy overrides it for a
    token and for a service's integration keys; 0 turns it off."""
    policy, names = api_policy()
    tokens = [
        t.model_copy(update={"rate_limit": 0 if t.name == "admin" else None}) for t in policy.tokens
    ]
    services = [
        s.model_copy(update={"rate_limit": 1 if s.name == names.other_service else None})
        for s in policy.services
    ]
    policy = policy.model_copy(update={"tokens": tokens, "services": services})
    monkeypatch.setenv("INCIDENTFLOW_RATE_LIMIT", "2")
    settings = Settings(database_url=database_url)
    assert settings.incidentflow_rate_limit == 2
    async with serve(create_app(settings, policy, temporal=temporal_client)) as http:
        reads = [(await http.get("/metrics", headers=names.auth("read"))).status_code]
        reads += [(await http.get("/metrics", headers=names.auth("read"))).status_code]
        limited = await http.get("/metrics", headers=names.auth("read"))
        assert reads == [200, 200] and limited.status_code == 429
        assert limited.headers["retry-after"] == "30"  # one request's worth at 2/min
        assert limited.json()["message"] == "rate limit of 2 requests per minute exceeded"
        # the admin token's override: unlimited
        admin = [(await http.get("/metrics", headers=names.auth("admin"))).status_code]
        admin += [(await http.get("/metrics", headers=names.auth("admin"))) for _ in range(5)]
        assert admin[0] == 200 and all(r.status_code == 200 for r in admin[1:])
        # the payments service's keys: 1/min, PagerDuty's throttle answer past it
        event = {"routing_key": names.other_key, "event_action": "acknowledge", "dedup_key": "k"}
        answers = [await http.post("/v2/enqueue", json=event) for _ in range(2)]
        assert [a.status_code for a in answers] == [202, 429]
        assert answers[1].headers["retry-after"] == "60"
        # the checkout service's key: the environment's 2/min
        am = f"/api/v1/integrations/alertmanager/{names.key}"
        body = {"version": "4", "status": "resolved", "alerts": []}
        statuses = [(await http.post(am, json=body)).status_code for _ in range(3)]
        assert statuses == [202, 202, 429]
    monkeypatch.setenv("INCIDENTFLOW_RATE_LIMIT", "0")  # off, where no override says more
    settings = Settings(database_url=database_url)
    async with serve(create_app(settings, policy, temporal=temporal_client)) as http:
        reads = [(await http.get("/metrics", headers=names.auth("read"))) for _ in range(5)]
        assert all(r.status_code == 200 for r in reads)
        answers = [await http.post("/v2/enqueue", json=event) for _ in range(2)]
        assert [a.status_code for a in answers] == [202, 429]


async def test_503_with_retry_after_when_postgres_or_temporal_is_down(
    temporal_client: Client,
) -> None:
    policy, names = api_policy()
    dead_db = Settings(database_url="postgresql://incidentflow@127.0.0.1:1/none")
    app = create_app(dead_db, policy, temporal=temporal_client, options=ApiOptions(db_timeout=0.5))
    async with serve(app) as http:
        listing = await http.get(INCIDENTS, headers=names.auth("read"))
        assert listing.status_code == 503
        assert listing.headers["retry-after"] == "5"
        assert error(listing) == {
            "error": "unavailable",
            "message": "PostgreSQL is unreachable; try again",
            "details": None,
        }
        assert "127.0.0.1" not in listing.text
        report = await http.get("/api/v1/reports/summary", headers=names.auth("read"))
        assert report.status_code == 503
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["temporal"] == "ok"
        assert ready.json()["checks"]["postgres"].startswith("unavailable")
        metrics = await http.get("/metrics", headers=names.auth("read"))
        assert metrics.status_code == 200  # still scrapeable; notification counts omitted
        assert "incidentflow_notifications{" not in metrics.text

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        ui=False,
        dev_server_extra_args=["--log-level", "error"],
    )
    gone = env.client
    await env.shutdown()  # a Temporal that was there and went away
    app = create_app(Settings(), policy, temporal=gone, options=ApiOptions(temporal_timeout=1.5))
    async with serve(app) as http:
        created = await http.post(
            INCIDENTS,
            json={"title": "x", "service": names.service},
            headers=names.auth("ingest"),
        )
        assert created.status_code == 503, created.text
        assert created.headers["retry-after"] == "5"
        assert error(created)["error"] == "unavailable"
        pd = await http.post(
            "/v2/enqueue",
            json={
                "routing_key": names.key,
                "event_action": "trigger",
                "payload": {"summary": "s", "source": "h", "severity": "info"},
            },
        )
        assert pd.status_code == 503
        assert pd.json()["status"] == "error"
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["temporal"].startswith("unavailable")
