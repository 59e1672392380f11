"""SLA clocks on the real stack (issue 20): pause and resume through the API (409s, the
auto-resume at ``until``, the clocks resumed with the business time they had left, the
ticket row's paused time), with the clocks on a business calendar."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from temporalio.client import Client

from schemas.calendars import WEEKDAYS, Calendar
from schemas.enums import Clock, EventKind
from schemas.incident import IncidentSnapshot
from schemas.policy import Policy
from schemas.settings import Settings
from starter.api.app import create_app
from tests.conftest import wait_for
from tests.support_api import ApiNames, ApiStack, api_policy, serve
from tests.support_incidents import record_history, running_stack

INCIDENTS = "/api/v1/incidents"
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


async def act(api: ApiStack, number: str, action: str, body: Any = None) -> httpx.Response:
    return await api.http.post(
        f"{INCIDENTS}/{number}/{action}", json=body, headers=api.auth("responder")
    )


async def snapshot(api: ApiStack, number: str) -> IncidentSnapshot:
    response = await api.http.get(f"{INCIDENTS}/{number}", headers=api.auth("read"))
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
        await record_history(api.stack, number, "sla_pause_resume")
