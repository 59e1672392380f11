"""Secrets never leak: a full scenario (API tokens, an Alertmanager key in the URL path, a
PagerDuty routing key in the body, SMTP with a password, a signed webhook, a Slack URL whose
path is the secret, a dashboard sign-in) runs with every logger at DEBUG; then the captured
log, every ticket table and every Temporal history of the scenario are searched for each
secret. Tokens live only as SHA-256 digests in the policy.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from schemas.policy import Policy
from schemas.settings import Settings
from tests.conftest import wait_for
from tests.support_api import alertmanager_alert, alertmanager_payload, api_policy
from tests.support_drills import (
    DELIVERY_HEADER,
    api_with_worker,
    fetch_all,
    fresh_database,
    terminate_all,
)
from tests.support_receivers import HttpReceiver, SmtpServer, SmtpSink

SMTP_PASSWORD = f"smtp-pw-{uuid.uuid4().hex}"
WEBHOOK_SECRET = f"hmac-secret-{uuid.uuid4().hex}"
SLACK_SECRET = f"slack{uuid.uuid4().hex}"
#: the harness's own HTTP client stands in for Alertmanager and PagerDuty: its request lines
#: (which name the integration key, as the sender's own log would) are not incidentflow's;
#: neither are the test SMTP server's (aiosmtpd logs the AUTH exchange at DEBUG)
HARNESS = "http://incidentflow.test"
HARNESS_LOGGERS = ("mail.log",)


def scenario_policy(receiver: HttpReceiver) -> tuple[Policy, Any]:
    policy, names = api_policy()
    data = policy.model_dump(mode="json")
    data["users"][0]["email"] = "alice@example.test"
    data["channels"] = [
        {
            "name": "hooks",
            "kind": "webhook",
            "target": receiver.url("/hook"),
            "secret": WEBHOOK_SECRET,
        },
        {
            "name": "slack",
            "kind": "slack",
            "target": receiver.url(f"/services/T000/B000/{SLACK_SECRET}"),
        },
    ]
    first = data["escalation_policies"][0]["levels"][0]
    first["targets"] = [*first["targets"], "channel:hooks", "channel:slack"]
    return Policy.model_validate(data), names


async def test_no_secret_in_logs_tickets_or_histories(
    temporal_client: Client,
    postgres_server: str,
    task_queue: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sink = SmtpSink(credentials=("incidentflow", SMTP_PASSWORD))
    with (
        HttpReceiver() as receiver,
        SmtpServer(sink) as smtp,
        fresh_database(postgres_server) as database_url,
    ):
        policy, names = scenario_policy(receiver)
        secrets = {
            **{f"token {name}": value for name, value in names.tokens.items()},
            "alertmanager key": names.key,
            "pagerduty routing key": names.other_key,
            "SMTP password": SMTP_PASSWORD,
            "webhook secret": WEBHOOK_SECRET,
            "Slack URL secret": SLACK_SECRET,
        }
        settings = Settings(
            database_url=database_url,
            temporal_task_queue=task_queue,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_username="incidentflow",
            smtp_password=SecretStr(SMTP_PASSWORD),
        )
        try:
            async with api_with_worker(temporal_client, policy, settings) as http:
                numbers = await _scenario(http, names)
                # every channel delivered: mail (after AUTH), signed webhook, Slack
                await sink.wait_messages(1, within=30)
                await receiver.wait_requests("/hook", 1, within=30)
                hook = receiver.requests("/hook")[0]
                assert hook.header(
                    "X-Incidentflow-Signature",
                ) and hook.header(DELIVERY_HEADER)
                await receiver.wait_requests(f"/services/T000/B000/{SLACK_SECRET}", 1)
                assert set(sink.logins) == {"incidentflow"}

                async def all_resolved() -> bool:
                    rows = await fetch_all(
                        database_url, "SELECT count(*) FROM incidents WHERE status = 'resolved'"
                    )
                    return rows[0][0] == len(numbers)

                await wait_for(all_resolved, timeout=30, message="resolved ticket rows")

            logged = _captured(caplog.records)
            assert logged.strip(), "nothing was logged: the capture is broken"
            tables = await _table_text(database_url)
            histories = ""
            async for wf in temporal_client.list_workflows(f"TaskQueue = '{task_queue}'"):
                handle = temporal_client.get_workflow_handle(wf.id, run_id=wf.run_id)
                histories += (await handle.fetch_history()).to_json()
            assert histories
            leaks = {
                where: [what for what, value in secrets.items() if value in text]
                for where, text in (("log", logged), ("tables", tables), ("histories", histories))
            }
            assert leaks == {"log": [], "tables": [], "histories": []}
        finally:
            await terminate_all(temporal_client, task_queue)


async def _scenario(http: httpx.AsyncClient, names: Any) -> list[str]:
    """Every way in and every credential: native API, both integrations, the dashboard."""
    numbers: list[str] = []
    created = await http.post(
        "/api/v1/incidents",
        json={"title": "secrets drill", "service": names.service},
        headers=names.auth("ingest"),
    )
    assert created.status_code == 201, created.text
    numbers.append(created.json()["number"])

    am = await http.post(
        f"/api/v1/integrations/alertmanager/{names.key}",
        json=alertmanager_payload([alertmanager_alert(uuid.uuid4().hex, "web-1")]),
    )
    assert am.status_code == 202, am.text  # the fast path: the number follows

    pd = await http.post(
        "/v2/enqueue",
        json={
            "routing_key": names.other_key,
            "event_action": "trigger",
            "dedup_key": uuid.uuid4().hex,
            "payload": {"summary": "disk full", "source": "db-1", "severity": "critical"},
        },
    )
    assert pd.status_code == 202, pd.text

    async def listed(service: str, count: int) -> list[str] | None:
        page = await http.get(
            "/api/v1/incidents", params={"service": service}, headers=names.auth("read")
        )
        found = [item["number"] for item in page.json()["items"]]
        return found if len(found) == count else None

    numbers += await wait_for(lambda: listed(names.service, 2), message="the alert's ticket")
    numbers += await wait_for(lambda: listed(names.other_service, 1), message="the event's")
    numbers = sorted(set(numbers))

    # refusals must not echo what was presented either
    wrong = await http.get("/api/v1/incidents", headers={"Authorization": f"Bearer {names.key}"})
    assert wrong.status_code == 401 and names.key not in wrong.text
    forbidden = await http.get("/api/v1/incidents", headers=names.auth("ingest"))
    assert forbidden.status_code == 403 and names.tokens["ingest"] not in forbidden.text

    for number in numbers:
        for segment, body in (("acknowledge", {"note": "on it"}), ("resolve", None)):
            done = await http.post(
                f"/api/v1/incidents/{number}/{segment}", json=body, headers=names.auth("respond")
            )
            assert done.status_code == 200, done.text

    # the dashboard: sign in with a token, get a session, load a page
    page = await http.get("/dashboard/login")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    signed = await http.post(
        "/dashboard/login",
        data={"csrf": csrf, "next": "/dashboard/", "token": names.tokens["responder"]},
    )
    assert signed.status_code == 303, signed.text
    board = await http.get("/dashboard/")
    assert board.status_code == 200 and names.tokens["responder"] not in board.text
    return numbers


def _captured(records: list[logging.LogRecord]) -> str:
    """Every record as a handler would write it (message, arguments, traceback), minus the
    harness's own request lines."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    lines = []
    for record in records:
        text = formatter.format(record)
        if record.name.startswith("httpx") and HARNESS in text:
            continue
        if record.name.startswith(HARNESS_LOGGERS):
            continue
        lines.append(text)
        lines.append(repr(record.__dict__))
    return "\n".join(lines)


async def _table_text(database_url: str) -> str:
    rows = await fetch_all(
        database_url,
        "SELECT string_agg(t::text, E'\\n') FROM ("
        " SELECT row_to_json(i)::text AS t FROM incidents i"
        " UNION ALL SELECT row_to_json(e)::text FROM incident_events e"
        " UNION ALL SELECT row_to_json(n)::text FROM notifications n"
        " UNION ALL SELECT row_to_json(r)::text FROM reviews r) all_rows",
    )
    text: str = rows[0][0] or ""
    assert text
    return text
