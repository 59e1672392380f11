"""The ``notify`` activity against real receivers, a real PostgreSQL and a real Temporal.

Most cases run the activity from a tiny workflow with a fast retry policy, so transient
failures go through Temporal's actual retry path; a few call it directly through
``ActivityEnvironment`` to look at one attempt.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.db import create_pool
from activities.notifications.activity import TRANSIENT_ERROR_TYPE, NotifyActivities
from activities.notifications.signing import verify_webhook
from schemas.activity_io import NOTIFY, NotifyInput, NotifyResult
from schemas.enums import EventKind
from schemas.incident import IncidentSnapshot
from schemas.links import incident_url
from schemas.policy import Policy
from schemas.settings import Settings
from tests.support_notifications import (
    BASE_URL,
    make_event,
    make_policy,
    make_snapshot,
    targets,
)
from tests.support_receivers import (
    HttpReceiver,
    Reply,
    SmtpServer,
    SmtpSink,
    http_receiver_fixture,  # noqa: F401 (fixture http_receiver)
    smtp_server_fixture,  # noqa: F401 (fixture smtp_server)
)
from worker.devinfra import free_port

SECRET = "whsec-test-0123456789"
SMTP_PASSWORD = "smtp-pa55word-do-not-log"


@workflow.defn(sandboxed=False)
class NotifyOnceWorkflow:
    """Runs ``notify`` once with a fast retry policy, as the incident workflow would."""

    @workflow.run
    async def run(self, input: NotifyInput) -> NotifyResult:
        return await workflow.execute_activity(
            NOTIFY,
            input,
            result_type=NotifyResult,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100),
                backoff_coefficient=1.0,
                maximum_attempts=6,
            ),
        )


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    pool = await create_pool(database_url, min_size=1, max_size=8)
    try:
        yield pool
    finally:
        await pool.close()


def settings_for(smtp: SmtpServer | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "incidentflow_base_url": BASE_URL,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port if smtp else free_port(),
        "smtp_from": "incidentflow@example.com",
    }
    values.update(overrides)
    return Settings(**values)


async def rows(pool: AsyncConnectionPool[Any], number: str) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM notifications WHERE number = %s ORDER BY key", (number,))
        return await cur.fetchall()


async def run_workflow(
    client: Client, task_queue: str, activities: NotifyActivities, input: NotifyInput
) -> NotifyResult:
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[NotifyOnceWorkflow],
        activities=[activities.notify],
    ):
        return await client.execute_workflow(
            NotifyOnceWorkflow.run,
            input,
            id=f"notify-{uuid.uuid4()}",
            task_queue=task_queue,
        )


def notify_input(
    incident: IncidentSnapshot, *names: str, kind: EventKind = EventKind.TRIGGERED
) -> NotifyInput:
    return NotifyInput(incident=incident, event=make_event(kind, seq=1), targets=targets(*names))


def webhook_policy(receiver: HttpReceiver, *paths: str, secret: str | None = SECRET) -> Policy:
    """One webhook channel per path, named after it (``/flaky`` → channel ``flaky``)."""
    return make_policy(
        channels=[
            {"name": p.strip("/"), "kind": "webhook", "target": receiver.url(p), "secret": secret}
            for p in paths
        ]
    )


# -- email --------------------------------------------------------------------------------


async def test_triggered_email_arrives_with_subject_parts_and_link(
    pool: AsyncConnectionPool[Any],
    smtp_server: SmtpServer,
    temporal_client: Client,
    task_queue: str,
) -> None:
    policy = make_policy(users=[{"name": "alice", "email": "alice@example.com"}])
    acts = NotifyActivities(pool, policy, settings_for(smtp_server))
    incident = make_snapshot(title="Checkout 500s")
    result = await run_workflow(
        temporal_client, task_queue, acts, notify_input(incident, "user:alice")
    )

    key = f"{incident.number}:1:user:alice:alice:email"
    assert result.delivered == [key]
    assert result.recipients == ["alice"]
    (mail,) = await smtp_server.sink.wait_messages(1)
    assert mail["Subject"] == f"[SEV1] {incident.number} triggered: Checkout 500s"
    assert mail["To"] == "alice@example.com"
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    link = incident_url(BASE_URL, incident.number)
    assert link in text.get_content()
    assert f'href="{link}"' in html.get_content()
    (row,) = await rows(pool, incident.number)
    assert (row["status"], row["attempts"], row["channel"]) == ("sent", 1, "email")
    assert row["address"] == "alice@example.com" and row["sent_at"] is not None


async def test_script_title_is_escaped_in_html_email_and_slack_payload_is_json(
    pool: AsyncConnectionPool[Any],
    smtp_server: SmtpServer,
    http_receiver: HttpReceiver,
    temporal_client: Client,
    task_queue: str,
) -> None:
    title = "<script>alert(1)</script>"
    policy = make_policy(
        users=[
            {
                "name": "alice",
                "email": "alice@example.com",
                "slack": http_receiver.url("/slack/T000/B000/XXXX"),
            }
        ]
    )
    acts = NotifyActivities(pool, policy, settings_for(smtp_server))
    incident = make_snapshot(title=title)
    result = await run_workflow(
        temporal_client, task_queue, acts, notify_input(incident, "user:alice")
    )
    assert len(result.delivered) == 2

    (mail,) = await smtp_server.sink.wait_messages(1)
    html = mail.get_body(preferencelist=("html",))
    assert html is not None
    assert "<script>" not in html.get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.get_content()

    (request,) = http_receiver.requests("/slack/T000/B000/XXXX")
    payload = json.loads(request.body)
    assert title in payload["blocks"][0]["text"]["text"]
    assert isinstance(payload["text"], str)
    (slack_row,) = [r for r in await rows(pool, incident.number) if r["channel"] == "slack"]
    assert "XXXX" not in slack_row["address"], "webhook URL paths are secrets"


async def test_refused_recipient_and_bad_address_fail_permanently(
    pool: AsyncConnectionPool[Any],
    smtp_server: SmtpServer,
    temporal_client: Client,
    task_queue: str,
) -> None:
    smtp_server.sink.refused.add("gone@example.com")
    policy = make_policy(
        users=[
            {"name": "gone", "email": "gone@example.com"},
            {"name": "typo", "email": "typo.example.com"},
            {"name": "bob", "email": "bob@example.com"},
        ]
    )
    acts = NotifyActivities(pool, policy, settings_for(smtp_server))
    incident = make_snapshot()
    result = await run_workflow(
        temporal_client,
        task_queue,
        acts,
        notify_input(incident, "user:gone", "user:typo", "user:bob"),
    )
    assert result.delivered == [f"{incident.number}:1:user:bob:bob:email"]
    reasons = {f.recipient: f.reason for f in result.failed}
    assert "550" in reasons["gone"]
    assert "invalid email address" in reasons["typo"]
    by_recipient = {r["recipient"]: r for r in await rows(pool, incident.number)}
    assert by_recipient["gone"]["status"] == "failed" and by_recipient["gone"]["attempts"] == 1
    assert by_recipient["typo"]["status"] == "failed"
    assert by_recipient["bob"]["status"] == "sent"
    assert [m["To"] for m in smtp_server.sink.messages] == ["bob@example.com"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_smtp_auth_uses_settings_and_never_logs_the_password(
    pool: AsyncConnectionPool[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    policy = make_policy(users=[{"name": "alice", "email": "alice@example.com"}])
    with SmtpServer(SmtpSink(credentials=("incidentflow", SMTP_PASSWORD))) as server:
        good = settings_for(server, smtp_username="incidentflow", smtp_password=SMTP_PASSWORD)
        incident = make_snapshot()
        result = await ActivityEnvironment().run(
            NotifyActivities(pool, policy, good).notify, notify_input(incident, "user:alice")
        )
        assert len(result.delivered) == 1
        assert server.sink.logins == ["incidentflow"]

        bad = settings_for(server, smtp_username="incidentflow", smtp_password="wrong-pass")
        other = make_snapshot()
        result = await ActivityEnvironment().run(
            NotifyActivities(pool, policy, bad).notify, notify_input(other, "user:alice")
        )
        (failure,) = result.failed
        assert "535" in failure.reason
        assert len(server.sink.envelopes) == 1
    assert SMTP_PASSWORD not in caplog.text and "wrong-pass" not in caplog.text
    assert all("pass" not in r["last_error"] for r in await rows(pool, other.number))


async def test_smtp_server_down_is_transient(pool: AsyncConnectionPool[Any]) -> None:
    policy = make_policy(users=[{"name": "alice", "email": "alice@example.com"}])
    acts = NotifyActivities(pool, policy, settings_for(None))
    incident = make_snapshot()
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(acts.notify, notify_input(incident, "user:alice"))
    assert raised.value.type == TRANSIENT_ERROR_TYPE
    assert not raised.value.non_retryable
    (row,) = await rows(pool, incident.number)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "SMTP connection" in row["last_error"]


# -- webhooks -----------------------------------------------------------------------------


async def test_signed_webhook_verifies_and_tampering_fails(
    pool: AsyncConnectionPool[Any], http_receiver: HttpReceiver
) -> None:
    policy = webhook_policy(http_receiver, "/ops")
    acts = NotifyActivities(pool, policy, settings_for())
    incident = make_snapshot()
    result = await ActivityEnvironment().run(acts.notify, notify_input(incident, "channel:ops"))
    key = f"{incident.number}:1:channel:ops:ops:webhook"
    assert result.delivered == [key]

    (request,) = http_receiver.requests("/ops")
    stamp = request.header("X-Incidentflow-Timestamp")
    signature = request.header("X-Incidentflow-Signature")
    assert stamp is not None and signature is not None and signature.startswith("sha256=")
    assert verify_webhook(SECRET, stamp, request.body, signature, now=time.time())
    tampered = request.body.replace(b"Checkout", b"Checkin")
    assert tampered != request.body
    assert not verify_webhook(SECRET, stamp, tampered, signature, now=time.time())
    assert not verify_webhook("wrong", stamp, request.body, signature, now=time.time())

    payload = json.loads(request.body)
    assert payload["key"] == key == request.header("X-Incidentflow-Delivery")
    assert payload["incident"]["number"] == incident.number
    assert payload["event"]["kind"] == "triggered"
    assert payload["link"] == incident_url(BASE_URL, incident.number)


async def test_500_500_200_delivers_once_after_three_attempts(
    pool: AsyncConnectionPool[Any],
    http_receiver: HttpReceiver,
    temporal_client: Client,
    task_queue: str,
) -> None:
    http_receiver.script("/flaky", 500, 500, 200)
    acts = NotifyActivities(pool, webhook_policy(http_receiver, "/flaky"), settings_for())
    incident = make_snapshot()
    result = await run_workflow(
        temporal_client, task_queue, acts, notify_input(incident, "channel:flaky")
    )
    assert result.delivered == [f"{incident.number}:1:channel:flaky:flaky:webhook"]
    assert result.failed == []
    requests = http_receiver.requests("/flaky")
    assert len(requests) == 3, "two failures, then exactly one successful delivery"
    (row,) = await rows(pool, incident.number)
    assert (row["status"], row["attempts"]) == ("sent", 3)
    assert row["last_error"] is None and row["sent_at"] is not None


async def test_404_is_one_attempt_recorded_failed_and_returned(
    pool: AsyncConnectionPool[Any],
    http_receiver: HttpReceiver,
    temporal_client: Client,
    task_queue: str,
) -> None:
    http_receiver.script("/missing", Reply(404, body=b"no such hook"))
    policy = make_policy(
        users=[{"name": "alice", "webhook": http_receiver.url("/alice")}],
        channels=[{"name": "missing", "kind": "webhook", "target": http_receiver.url("/missing")}],
    )
    acts = NotifyActivities(pool, policy, settings_for())
    incident = make_snapshot()
    result = await run_workflow(
        temporal_client, task_queue, acts, notify_input(incident, "channel:missing", "user:alice")
    )
    (failure,) = result.failed
    assert (failure.target, failure.recipient, failure.channel) == (
        "channel:missing",
        "missing",
        "webhook",
    )
    assert "HTTP 404" in failure.reason and "no such hook" in failure.reason
    assert result.delivered == [f"{incident.number}:1:user:alice:alice:webhook"]
    assert len(http_receiver.requests("/missing")) == 1
    by_target = {r["target"]: r for r in await rows(pool, incident.number)}
    missing = by_target["channel:missing"]
    assert (missing["status"], missing["attempts"]) == ("failed", 1)
    assert "HTTP 404" in missing["last_error"]
    # unsigned without a secret, but still timestamped
    (request,) = http_receiver.requests("/missing")
    assert request.header("X-Incidentflow-Signature") is None
    assert request.header("X-Incidentflow-Timestamp") is not None


async def test_retry_after_a_successful_send_does_not_send_again(
    pool: AsyncConnectionPool[Any],
    http_receiver: HttpReceiver,
    temporal_client: Client,
    task_queue: str,
) -> None:
    http_receiver.script("/flaky", 503)
    http_receiver.script("/broken", 410)
    acts = NotifyActivities(
        pool, webhook_policy(http_receiver, "/good", "/flaky", "/broken"), settings_for()
    )
    incident = make_snapshot()
    input = notify_input(incident, "channel:good", "channel:flaky", "channel:broken")
    result = await run_workflow(temporal_client, task_queue, acts, input)

    good = f"{incident.number}:1:channel:good:good:webhook"
    flaky = f"{incident.number}:1:channel:flaky:flaky:webhook"
    broken = f"{incident.number}:1:channel:broken:broken:webhook"
    # attempt 1: good sent, flaky 503, broken 410; attempt 2: only flaky is sent
    assert result.delivered == [flaky]
    assert sorted(result.skipped) == sorted([good, broken])
    # the failure recorded by attempt 1 still reaches the workflow
    assert [(f.target, "410" in f.reason) for f in result.failed] == [("channel:broken", True)]
    assert len(http_receiver.requests("/good")) == 1
    assert len(http_receiver.requests("/flaky")) == 2
    assert len(http_receiver.requests("/broken")) == 1

    # the activity retried once more (e.g. its completion was lost): nothing is sent
    again = await ActivityEnvironment().run(acts.notify, input)
    assert again.delivered == [] and sorted(again.skipped) == sorted([good, flaky, broken])
    assert len(http_receiver.requests()) == 4
    attempts = {
        r["target"]: (r["status"], r["attempts"]) for r in await rows(pool, incident.number)
    }
    assert attempts == {
        "channel:good": ("sent", 1),
        "channel:flaky": ("sent", 2),
        "channel:broken": ("failed", 1),
    }


async def test_429_retry_after_is_honoured(
    pool: AsyncConnectionPool[Any],
    http_receiver: HttpReceiver,
    temporal_client: Client,
    task_queue: str,
) -> None:
    http_receiver.script("/limited", Reply(429, headers={"Retry-After": "2"}), 200)
    acts = NotifyActivities(pool, webhook_policy(http_receiver, "/limited"), settings_for())
    incident = make_snapshot()
    result = await run_workflow(
        temporal_client, task_queue, acts, notify_input(incident, "channel:limited")
    )
    assert len(result.delivered) == 1
    first, second = http_receiver.requests("/limited")
    # the retry policy alone retries after 0.1 s (observed ≤ 1 s with the server's timers), so
    # Retry-After is 2 s to tell the two apart
    assert second.at - first.at >= 1.9
    (row,) = await rows(pool, incident.number)
    assert (row["status"], row["attempts"]) == ("sent", 2)


# -- fan-out, resolution and the other channels ---------------------------------------------


async def test_fan_out_resolves_schedules_dedupes_and_isolates_failures(
    pool: AsyncConnectionPool[Any],
    http_receiver: HttpReceiver,
    temporal_client: Client,
    task_queue: str,
) -> None:
    http_receiver.script("/dead", 400)
    policy = make_policy(
        users=[
            {"name": "carol", "webhook": http_receiver.url("/carol"), "full_name": "Carol C"},
            {"name": "dave"},  # no contacts: console
        ],
        channels=[
            {"name": "dead", "kind": "webhook", "target": http_receiver.url("/dead")},
            {"name": "ops", "kind": "slack", "target": http_receiver.url("/ops-slack")},
        ],
        schedules=[{"name": "primary", "users": ["carol"]}],
    )
    acts = NotifyActivities(pool, policy, settings_for())
    incident = make_snapshot()
    result = await run_workflow(
        temporal_client,
        task_queue,
        acts,
        notify_input(
            incident,
            "channel:dead",
            "schedule:primary",
            "user:carol",
            "user:dave",
            "channel:ops",
            "user:ghost",
        ),
    )
    n = incident.number
    assert sorted(result.delivered) == sorted(
        [
            f"{n}:1:schedule:primary:carol:webhook",
            f"{n}:1:user:dave:dave:console",
            f"{n}:1:channel:ops:ops:slack",
        ]
    )
    assert result.recipients == ["carol", "dave"]
    failed = {f.target: f.reason for f in result.failed}
    assert set(failed) == {"channel:dead", "user:ghost"}
    assert "unknown user 'ghost'" in failed["user:ghost"]
    assert len(http_receiver.requests("/carol")) == 1, "carol reached twice, messaged once"
    assert "Carol C" in json.loads(http_receiver.requests("/carol")[0].body)["text"]
    assert len(http_receiver.requests("/ops-slack")) == 1
    statuses = {r["key"]: r["status"] for r in await rows(pool, n)}
    assert statuses[f"{n}:1:user:ghost:ghost:none"] == "failed"
    assert statuses[f"{n}:1:user:dave:dave:console"] == "sent"


async def test_apprise_url_delivers_and_classifies_failures(
    pool: AsyncConnectionPool[Any],
    http_receiver: HttpReceiver,
    temporal_client: Client,
    task_queue: str,
) -> None:
    http_receiver.script("/apprise-flaky", 502)
    http_receiver.script("/apprise-gone", 404)
    host = http_receiver.base_url.removeprefix("http://")
    policy = make_policy(
        channels=[
            {"name": name, "kind": "apprise", "target": f"json://{host}/apprise-{name}"}
            for name in ("ok", "flaky", "gone")
        ]
        + [{"name": "nonsense", "kind": "apprise", "target": "nosuchscheme://x"}]
    )
    acts = NotifyActivities(pool, policy, settings_for())
    incident = make_snapshot()
    result = await run_workflow(
        temporal_client,
        task_queue,
        acts,
        notify_input(incident, "channel:ok", "channel:flaky", "channel:gone", "channel:nonsense"),
    )
    failed = {f.target: f.reason for f in result.failed}
    assert set(failed) == {"channel:gone", "channel:nonsense"}
    assert "invalid or unsupported Apprise URL" in failed["channel:nonsense"]
    assert len(http_receiver.requests("/apprise-gone")) == 1
    assert len(http_receiver.requests("/apprise-flaky")) == 2, "a 502 is retried"
    (ok,) = http_receiver.requests("/apprise-ok")
    body = json.loads(ok.body)
    assert body["title"] == f"[SEV1] {incident.number} triggered: Checkout returns 500s"
    assert incident_url(BASE_URL, incident.number) in body["message"]
