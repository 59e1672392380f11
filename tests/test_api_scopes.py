"""The scope matrix: every endpoint by every scope → allowed or 403, asserted; public and
integration endpoints need no bearer token at all."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from schemas.enums import Scope
from starter.api.incidents import ACTION_ROUTES
from tests.support_api import alertmanager_alert, alertmanager_payload, api_stack
from tests.support_state import incident_facts, key_incident

ACTION_BODIES: dict[str, dict[str, Any] | None] = {
    "acknowledge": {"note": "mine"},
    "investigate": None,
    "mitigate": None,
    "resolve": {"resolution": "fixed"},
    "close": None,
    "cancel": {"reason": "false alarm"},
    "reopen": {"reason": "again"},
    "escalate": {"target": "user:carol"},
    "assign": {"role": "scribe", "user": "carol"},
    "severity": {"severity": "SEV1"},
    "notes": {"text": "a note"},
    "status-updates": {"text": "an update"},
    "merge": {"into": "INC-1"},
    "pause": {"reason": "waiting on the vendor"},
    "resume": None,
}
#: (method, path below /review, body, scope) of the review routes
REVIEW_CELLS: list[tuple[str, str, Any, Scope]] = [
    ("GET", "", None, Scope.READ),
    ("GET", "/postmortem.md", None, Scope.READ),
    ("GET", "/invite.ics", None, Scope.READ),
    ("POST", "/complete", {"summary": "s"}, Scope.RESPOND),
    ("POST", "/reschedule", {"at": "2030-01-01T10:00:00+00:00"}, Scope.RESPOND),
    ("POST", "/attendees", {"people": ["carol"]}, Scope.RESPOND),
    ("POST", "/action-items", {"title": "t", "owner": "carol"}, Scope.RESPOND),
    ("POST", "/waive", {"reason": "r"}, Scope.ADMIN),
]
ACTION_ITEM_CELLS: list[tuple[str, str, Any, Scope]] = [
    ("GET", "/api/v1/action-items", None, Scope.READ),
    ("GET", "/api/v1/action-items/{item_id}", None, Scope.READ),
    ("PATCH", "/api/v1/action-items/{item_id}", {"status": "done"}, Scope.RESPOND),
]
#: (path, body) of the heartbeat routes, scope ingest (the matrix policy declares none: an
#: allowed scope gets 404; tests/test_heartbeats.py pings declared ones)
HEARTBEAT_CELLS: list[tuple[str, Any]] = [
    ("/api/v1/heartbeats/{name}", None),
    (
        "/api/v1/heartbeats/{name}/alertmanager",
        alertmanager_payload([alertmanager_alert("0f1e2d3c4b5a6978", "prometheus:9090")]),
    ),
]
SCOPES = [Scope.INGEST, Scope.RESPOND, Scope.READ, Scope.ADMIN]
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz")}
BY_KEY = {
    ("POST", "/api/v1/integrations/alertmanager/{integration_key}"),
    ("POST", "/v2/enqueue"),
}
#: authenticated by Slack's request signature, never by a bearer token
SLACK_SIGNED = {
    ("POST", "/api/v1/integrations/slack/interactions"),
    ("POST", "/api/v1/integrations/slack/commands"),
}


async def test_every_endpoint_by_every_scope(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with api_stack(temporal_client, database_url, task_queue) as api:
        created = await api.http.post(
            "/api/v1/incidents",
            json={"title": "scope matrix", "service": api.names.service},
            headers=api.auth("ingest"),
        )
        number = created.json()["number"]
        other = await api.http.post(
            "/api/v1/incidents",
            json={"title": "linked by the matrix", "service": api.names.service},
            headers=api.auth("ingest"),
        )
        bodies = {**ACTION_BODIES, "links": {"kind": "related", "number": other.json()["number"]}}
        matrix: list[tuple[str, str, str, Any, Scope]] = [
            ("GET", "/api/v1/incidents", "/api/v1/incidents", None, Scope.READ),
            (
                "POST",
                "/api/v1/incidents",
                "/api/v1/incidents",
                {"title": "t", "service": api.names.service, "dedup_key": "matrix"},
                Scope.INGEST,
            ),
            ("GET", "/api/v1/incidents/{number}", f"/api/v1/incidents/{number}", None, Scope.READ),
            (
                "GET",
                "/api/v1/incidents/{number}/timeline",
                f"/api/v1/incidents/{number}/timeline",
                None,
                Scope.READ,
            ),
            ("GET", "/api/v1/reports/summary", "/api/v1/reports/summary", None, Scope.READ),
            ("GET", "/metrics", "/metrics", None, Scope.READ),
            # started without a file: admin gets 409 (tests/test_policy_reload.py reloads)
            (
                "POST",
                "/api/v1/admin/policy/reload",
                "/api/v1/admin/policy/reload",
                None,
                Scope.ADMIN,
            ),
        ]
        for segment in ACTION_ROUTES:
            matrix.append(
                (
                    "POST",
                    f"/api/v1/incidents/{{number}}/{segment}",
                    f"/api/v1/incidents/{number}/{segment}",
                    bodies[segment],
                    Scope.RESPOND,
                )
            )
        links = "/api/v1/incidents/{number}/links"
        matrix.append(
            ("DELETE", links, links.format(number=number), bodies["links"], Scope.RESPOND)
        )
        # the review routes (this incident has none: allowed scopes get its 404)
        review = "/api/v1/incidents/{number}/review"
        for method, suffix, body, scope in REVIEW_CELLS:
            template = review + suffix
            matrix.append((method, template, template.format(number=number), body, scope))
        for method, template, body, scope in ACTION_ITEM_CELLS:
            matrix.append((method, template, template.format(item_id=999999999), body, scope))
        for template, body in HEARTBEAT_CELLS:
            url = template.format(name="matrix-beat")
            matrix.append(("POST", template, url, body, Scope.INGEST))
        matrix.append(("GET", "/api/v1/heartbeats", "/api/v1/heartbeats", None, Scope.READ))
        similar = "/api/v1/incidents/{number}/similar"
        matrix.append(("GET", similar, similar.format(number=number), None, Scope.READ))
        matrix.append(("GET", "/api/v1/search", "/api/v1/search?q=matrix", None, Scope.READ))
        for report in (
            "/api/v1/reports/trends",
            "/api/v1/reports/recurring",
            "/api/v1/exports/incidents.csv",
            "/api/v1/exports/incidents.jsonl",
            "/api/v1/exports/events.csv",
        ):
            matrix.append(("GET", report, report, None, Scope.READ))

        # the matrix covers every bearer-authenticated operation the app has
        documented = {
            (method.upper(), path)
            for path, ops in api.app.openapi()["paths"].items()
            for method in ops
        }
        assert documented == {(m, t) for m, t, *_ in matrix} | PUBLIC | BY_KEY | SLACK_SIGNED

        async def state() -> dict[str, Any]:
            """All a matrix request could change: the incident every action targets and the
            one the create cell's dedup key opens (None until an allowed create opened it)."""
            return {
                "incident": incident_facts(await api.stack.client.get(number)),
                "matrix": await key_incident(temporal_client, api.names.service, "matrix"),
            }

        outcomes: dict[tuple[str, str], dict[str, int]] = {}
        for method, template, url, body, required in matrix:
            for scope in SCOPES:
                allowed = scope in (required, Scope.ADMIN)
                before = None if allowed else await state()
                response = await api.http.request(
                    method, url, json=body, headers=api.auth(scope.value)
                )
                outcomes.setdefault((method, template), {})[scope.value] = response.status_code
                if allowed:
                    assert response.status_code not in (401, 403), (template, scope, response.text)
                    assert response.status_code < 500, (template, scope, response.text)
                else:
                    assert response.status_code == 403, (template, scope, response.text)
                    assert response.json() == {
                        "error": "forbidden",
                        "message": f"token {scope.value!r} lacks the {required.value!r} scope",
                        "details": {"required_scope": required.value},
                    }
                    assert await state() == before, (template, scope)  # refused: no effect
                # no token at all is always 401, and changes nothing either
            before = await state()
            anonymous = await api.http.request(method, url, json=body)
            assert anonymous.status_code == 401, template
            assert await state() == before, (template, "anonymous")
        # the respond token moved the incident: every action answered 200 or 409
        for segment in ACTION_ROUTES:
            statuses = outcomes[("POST", f"/api/v1/incidents/{{number}}/{segment}")]
            assert statuses["respond"] in (200, 409), (segment, statuses)

        for path in ("/healthz", "/readyz", "/openapi.json"):
            assert (await api.http.get(path)).status_code == 200, path

        # integrations: the key authenticates, whatever bearer token comes along (or none)
        am_url = f"/api/v1/integrations/alertmanager/{api.names.key}"
        cleared = alertmanager_payload(
            [alertmanager_alert("fp-none", "web-1", status="resolved")], status="resolved"
        )
        pd_event = {"routing_key": api.names.key, "event_action": "acknowledge", "dedup_key": "x"}
        for headers in [{}] + [api.auth(s.value) for s in SCOPES]:
            assert (await api.http.post(am_url, json=cleared, headers=headers)).status_code == 202
            assert (
                await api.http.post("/v2/enqueue", json=pd_event, headers=headers)
            ).status_code == 202
            wrong = await api.http.post(
                "/api/v1/integrations/alertmanager/wrong", json=cleared, headers=headers
            )
            assert wrong.status_code == 401
            pd_wrong = await api.http.post(
                "/v2/enqueue", json={**pd_event, "routing_key": "wrong"}, headers=headers
            )
            assert pd_wrong.status_code == 400

        # Slack: the signature authenticates; a bearer token of any scope is no substitute
        for _, path in sorted(SLACK_SIGNED):
            for headers in [{}] + [api.auth(s.value) for s in SCOPES]:
                before = await state()
                unsigned = await api.http.post(
                    path,
                    content=b"command=%2Fincident&text=list",
                    headers={**headers, "content-type": "application/x-www-form-urlencoded"},
                )
                assert unsigned.status_code == 401, (path, headers)
                assert await state() == before, path
