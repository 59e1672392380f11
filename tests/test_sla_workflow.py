"""SLA clocks on the real stack (issue 20): pause and resume through the API (409s, the
auto-resume at ``until``, the clocks resumed with the business time they had left, the
ticket row's paused time, the report), with the clocks on a business calendar; and an
escalation level held outside its calendar's working hours."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import Client

from schemas.calendars import WEEKDAYS, Calendar
from schemas.enums import Clock, EventKind
from schemas.incident import Alert, IncidentSnapshot
from schemas.policy import Policy
from schemas.settings import Settings
from starter.api.app import create_app
from tests.conftest import wait_for
from tests.support_api import ApiNames, ApiStack, api_policy, serve
from tests.support_incidents import make_policy, record_history, running_stack
from tests.test_api_native import INCIDENTS, act, get

#: every hour counts but a far holiday: the business-time path with deadlines a test can wait on
NEARLY_ALWAYS = Calendar(
    name="nearly-always", hours={d: "00:00-24:00" for d in WEEKDAYS}, holidays=[date(2099, 1, 1)]
)


def sla_policy(**clocks: Any) -> tuple[Policy, ApiNames]:
    policy, names = api_policy(**clocks)
    severities = {
        sev: sp.model_copy(update={"calendar": {Clock.MITIGATE: NEARLY_ALWAYS.name}})
        for sev, sp in policy.severities.items()
    }
    edited = policy.model_copy(update={"calendars": [NEARLY_ALWAYS], "severities": severities})
    return Policy.model_validate(edited.model_dump()), names


@asynccontextmanager
async def sla_api(
    temporal_client: Client, database_url: str, task_queue: str, **clocks: Any
) -> AsyncIterator[ApiStack]:
    policy, names = sla_policy(**clocks)
    async with running_stack(temporal_client, database_url, task_queue, policy) as stack:
        settings = Settings(database_url=database_url, temporal_task_queue=task_queue)
        app = create_app(settings, policy, temporal=temporal_client)
        async with serve(app) as http:
            yield ApiStack(http=http, app=app, stack=stack, names=names)


async def snapshot(api: ApiStack, number: str) -> IncidentSnapshot:
    response = await get(api, number)
    assert response.status_code == 200, response.text
    return IncidentSnapshot.model_validate(response.json())


async def test_pause_until_resumes_by_itself_and_by_hand_with_the_time_left(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with sla_api(
        temporal_client, database_url, task_queue, mitigate_within=30, resolve_within=60
    ) as api:
        created = await api.http.post(
            INCIDENTS,
            json={"title": "PSP timeouts", "service": api.names.service},
            headers=api.auth("ingest"),
        )
        number = created.json()["number"]
        before = await snapshot(api, number)
        assert before.clock_calendars[Clock.MITIGATE].name == NEARLY_ALWAYS.name
        assert before.deadlines.mitigate == before.created_at + timedelta(seconds=30)

        bad = await act(api, number, "pause", {"reason": "vendor", "until": "2020-01-01T00:00:00"})
        assert bad.status_code == 422 and "until" in bad.text  # no offset
        past = await act(api, number, "pause", {"reason": "vendor", "until": "2020-01-01T00:00Z"})
        # well-formed, but the incident's clock judges it: a conflict, like the fuzz contract
        assert past.status_code == 409 and "until must be in the future" in past.text
        blank = await act(api, number, "pause", {"reason": "  "})
        assert blank.status_code == 422
        nothing = await act(api, number, "resume")
        assert nothing.status_code == 409 and "not paused" in nothing.text

        until = datetime.now(UTC) + timedelta(seconds=1.5)
        paused = await act(
            api, number, "pause", {"reason": "waiting on the PSP", "until": until.isoformat()}
        )
        assert paused.status_code == 200, paused.text
        body = IncidentSnapshot.model_validate(paused.json())
        assert body.paused is not None and body.paused.reason == "waiting on the PSP"
        assert body.deadlines.mitigate is None and body.deadlines.resolve is None
        assert body.deadlines.ack is not None  # the ack clock never pauses
        assert set(body.paused.left) == {Clock.MITIGATE, Clock.RESOLVE}
        again = await act(api, number, "pause", {"reason": "twice"})
        assert again.status_code == 409 and "already paused" in again.text

        async def resumed() -> IncidentSnapshot | None:
            snap = await snapshot(api, number)
            return snap if any(e.kind == EventKind.RESUMED for e in snap.timeline) else None

        snap = await wait_for(resumed, timeout=15, message="auto-resume at until")
        event = next(e for e in snap.timeline if e.kind == EventKind.RESUMED)
        assert event.actor == "incidentflow" and event.at >= until.replace(microsecond=0)
        assert snap.paused is None and len(snap.pauses) == 1
        left = body.paused.left
        assert snap.deadlines.mitigate == event.at + timedelta(seconds=left[Clock.MITIGATE])
        assert snap.deadlines.resolve == event.at + timedelta(seconds=left[Clock.RESOLVE])

        # by hand, without until
        assert (await act(api, number, "pause", {"reason": "waiting on legal"})).status_code == 200
        by_hand = await act(api, number, "resume", {"note": "legal answered"})
        assert by_hand.status_code == 200, by_hand.text
        snap = await snapshot(api, number)
        assert [e.kind for e in snap.timeline][-2:] == [EventKind.PAUSED, EventKind.RESUMED]
        assert snap.timeline[-1].actor == "bob" and snap.timeline[-1].details["note"] == (
            "legal answered"
        )
        assert len(snap.pauses) == 2

        resolved = await act(api, number, "resolve")
        assert resolved.status_code == 200

        async def row() -> dict[str, Any] | None:
            rows = await api.stack.rows(
                "SELECT paused_seconds, paused_since, status FROM incidents WHERE number = %s",
                number,
            )
            return rows[0] if rows and rows[0]["status"] == "resolved" else None

        ticket = await wait_for(row, timeout=15, message="ticket row resolved")
        assert ticket["paused_since"] is None
        assert ticket["paused_seconds"] == snap.paused_seconds() > 1.0
        # reports show the paused time and MTTR net of it
        report = await api.http.get(
            "/api/v1/reports/summary",
            params={"service": api.names.service},
            headers=api.auth("read"),
        )
        assert report.status_code == 200, report.text
        summary = report.json()
        assert summary["paused_incidents"] == 1
        assert summary["paused_seconds"] == pytest.approx(snap.paused_seconds(), abs=0.01)
        assert summary["mttr_net_seconds"] == pytest.approx(
            summary["mttr_seconds"] - snap.paused_seconds(), abs=0.01
        )
        [sev] = summary["times_by_severity"]
        assert sev["paused_seconds"] == pytest.approx(snap.paused_seconds(), abs=0.01)
        await record_history(api.stack, number, "sla_pause_resume")


async def test_a_level_held_for_its_working_hours_pages_nobody_until_acknowledged(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    today = datetime.now(UTC).date()
    closed = Calendar(
        name="closed-today",
        hours={d: "00:00-24:00" for d in WEEKDAYS},
        holidays=[today, today + timedelta(days=1)],
    )
    data = make_policy(level_delay=60, ack_within=60).model_dump(mode="json")
    data["calendars"] = [closed.model_dump(mode="json")]
    data["escalation_policies"][0]["levels"][0]["when"] = closed.name
    policy = Policy.model_validate(data)
    async with running_stack(temporal_client, database_url, task_queue, policy) as st:
        ref = await st.client.trigger(
            Alert(service="checkout", title="batch late", dedup_key="held")
        )

        async def held() -> IncidentSnapshot | None:
            snap = await st.client.get(ref.number)
            return snap if any(e.kind == EventKind.ESCALATION_HELD for e in snap.timeline) else None

        snap = await wait_for(held, timeout=15, message="escalation_held")
        event = next(e for e in snap.timeline if e.kind == EventKind.ESCALATION_HELD)
        opens = datetime.combine(today + timedelta(days=2), datetime.min.time(), tzinfo=UTC)
        assert event.details == {"level": 1, "calendar": closed.name, "until": opens.isoformat()}
        assert snap.escalation.held and snap.deadlines.next_escalation == opens
        acked = await st.client.acknowledge(ref.number, "alice")
        assert not acked.escalation.held and acked.deadlines.next_escalation is None
        assert [e.kind for e in (await st.client.get(ref.number)).timeline] == [
            EventKind.TRIGGERED,
            EventKind.ESCALATION_HELD,
            EventKind.ACKNOWLEDGED,
        ]
        # nobody was paged: the held level sent nothing (the acknowledgement tells no one)
        assert [r for r in await st.notified(ref.number) if r["event_kind"] != "acknowledged"] == []
        await record_history(st, ref.number, "sla_level_held_then_acknowledged")
