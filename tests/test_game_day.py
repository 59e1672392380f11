"""Drills (game days): marked everywhere, paged to the console by default, left out of reports
and similar incidents, and played from a scenario by ``incidentflow drill run``. A real
worker, Temporal and PostgreSQL; the CLI as a subprocess."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.db import create_pool
from activities.notifications.activity import NotifyActivities
from schemas.activity_io import NotifyInput
from schemas.enums import EventKind
from schemas.incident import TimelineEvent
from schemas.settings import Settings
from tests.conftest import wait_for
from tests.support_api import alertmanager_alert, alertmanager_payload
from tests.support_cli import INCIDENTFLOW, clean_env
from tests.support_notifications import make_policy, make_snapshot, targets
from tests.support_receivers import (
    HttpReceiver,
    http_receiver_fixture,  # noqa: F401 (fixture http_receiver)
)
from tests.support_surfaces import Live, live_app
from tests.test_dashboard import signed_in


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def live(temporal_client: Client, database_url: str) -> AsyncIterator[Live]:
    async with live_app(temporal_client, database_url, f"tq-gameday-{uuid.uuid4()}") as app:
        yield app


async def rows(live: Live, where: str, *params: Any) -> list[dict[str, Any]]:
    return await live.stack.rows(
        f"SELECT number, drill, status, labels FROM incidents WHERE {where} ORDER BY number_seq",
        *params,
    )


async def test_drill_notifications_go_to_the_console_unless_the_policy_says_real(
    database_url: str, http_receiver: HttpReceiver
) -> None:
    channels = [{"name": "ops", "kind": "webhook", "target": http_receiver.url("/ops")}]
    incident = make_snapshot(title="Checkout 500s").model_copy(update={"drill": True})
    event = TimelineEvent(
        seq=1, at=incident.created_at, actor="monitoring", kind=EventKind.TRIGGERED
    )
    page = NotifyInput(incident=incident, event=event, targets=targets("channel:ops"))
    pool: AsyncConnectionPool[Any] = await create_pool(database_url, max_size=2)
    try:
        console = NotifyActivities(pool, make_policy(channels=channels), Settings())
        result = await ActivityEnvironment().run(console.notify, page)
        assert result.delivered == [f"{incident.number}:1:channel:ops:ops:console"]
        assert http_receiver.requests("/ops") == []  # nobody woken

        real_policy = make_policy(channels=channels).model_copy(
            update={"drills": make_policy().drills.model_copy(update={"page": "real"})}
        )
        real = NotifyActivities(pool, real_policy, Settings())
        again = page.model_copy(update={"event": event.model_copy(update={"seq": 2})})
        result = await ActivityEnvironment().run(real.notify, again)
        assert result.delivered == [f"{incident.number}:2:channel:ops:ops:webhook"]
        (request,) = http_receiver.requests("/ops")
        payload = json.loads(request.body)
        assert payload["subject"] == f"DRILL [SEV1] {incident.number} triggered: Checkout 500s"
        assert payload["text"].startswith("DRILL: a game-day exercise, not a real incident.")
    finally:
        await pool.close()


async def test_a_drill_from_every_way_in_is_marked_and_left_out_of_reports(live: Live) -> None:
    real = await live.trigger("Orders queue backlog above 10k", dedup_key=f"real-{uuid.uuid4()}")
    drill = await live.trigger("Orders queue backlog above 10k", drill=True)
    am_labels = {"incidentflow_drill": "true", "service_hint": uuid.uuid4().hex}
    am = await live.http.post(
        f"/api/v1/integrations/alertmanager/{live.names.key}",
        json=alertmanager_payload([alertmanager_alert(uuid.uuid4().hex, "web-9", **am_labels)]),
    )
    assert am.status_code in (200, 202), am.text
    pd_key = f"pd-drill-{uuid.uuid4().hex}"
    pd = await live.http.post(
        "/v2/enqueue",
        json={
            "routing_key": live.names.key,
            "event_action": "trigger",
            "dedup_key": pd_key,
            "payload": {
                "summary": "Disk at 99% (game day)",
                "severity": "error",
                "source": "db-7",
                "custom_details": {"drill": True},
            },
        },
    )
    assert pd.status_code == 202, pd.text

    async def all_four() -> list[dict[str, Any]] | None:
        found = await rows(live, "service = %s", live.service)
        return found if len(found) == 4 else None

    found = await wait_for(all_four, timeout=20, message="four tickets")
    by_number = {r["number"]: r for r in found}
    assert by_number[real["number"]]["drill"] is False
    assert by_number[drill["number"]]["drill"] is True
    assert sorted(r["drill"] for r in found) == [False, True, True, True]

    snapshot = (
        await live.http.get(f"/api/v1/incidents/{drill['number']}", headers=live.auth("read"))
    ).json()
    assert snapshot["drill"] is True
    listed = await live.http.get(
        "/api/v1/incidents", params={"service": live.service}, headers=live.auth("read")
    )
    assert sorted(i["drill"] for i in listed.json()["items"]) == [False, True, True, True]

    report = "/api/v1/reports/summary"
    params = {"service": live.service}
    summary = (await live.http.get(report, params=params, headers=live.auth("read"))).json()
    assert summary["total"] == 1 and summary["include_drills"] is False
    every = await live.http.get(
        report, params={**params, "include_drills": "true"}, headers=live.auth("read")
    )
    assert every.json()["total"] == 4

    # a later real incident like the drill: the drill is not "seen before", the real one is
    later = await live.trigger("Orders queue backlog above 10k", dedup_key=f"r-{uuid.uuid4()}")
    similar = await live.http.get(
        f"/api/v1/incidents/{later['number']}/similar", headers=live.auth("read")
    )
    similar_numbers = [m["number"] for m in similar.json()["items"]]
    assert real["number"] in similar_numbers and drill["number"] not in similar_numbers

    async with signed_in(live, "read") as client:
        page = await client.get(f"/dashboard/incidents/{drill['number']}")
        assert 'id="drill-banner"' in page.text
        real_page = await client.get(f"/dashboard/incidents/{real['number']}")
        assert 'id="drill-banner"' not in real_page.text
        reports = await client.get("/dashboard/reports", params={"service": live.service})
        trends = reports.text[reports.text.index('id="chart-trends"') :]
        assert trends.index("<svg") < trends.index("</section>")
        wow = reports.text[reports.text.index('id="table-week-over-week"') :]
        assert f"<td>{live.service}</td>" in wow[: wow.index("</table>")]  # the real ones
        assert 'id="table-recurring"' in reports.text
        board = await client.get("/dashboard/", params={"service": live.service})
        row = board.text[board.text.index(f'data-number="{drill["number"]}"') :]
        assert '<span class="badge drill">DRILL</span>' in row[: row.index("</tr>")]


async def test_drill_run_plays_a_scenario_and_prints_the_team_times(
    live: Live, tmp_path: Path
) -> None:
    name = f"game-day-{uuid.uuid4().hex[:8]}"
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        f"name: {name}\n"
        f"service: {live.service}\n"
        "wait: 30s\n"
        "alerts:\n"
        "  - {at: 0s, title: Checkout 5xx above 5%, severity: SEV2}\n"
        "  - {at: 2s, title: Payment provider timeouts, description: the PSP is slow}\n"
    )
    process = await asyncio.create_subprocess_exec(
        str(INCIDENTFLOW), "drill", "run", str(scenario), "--speed", "4", "--poll", "0.2",
        "--url", live.url, "--token", live.token("admin"), "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_env(),
    )  # fmt: skip

    async def both_sent() -> list[dict[str, Any]] | None:
        found = await rows(live, "labels->>'drill_scenario' = %s", name)
        return found if len(found) == 2 else None

    try:
        incidents = await wait_for(both_sent, timeout=20, message="the scenario's two drills")
        assert all(r["drill"] for r in incidents)
        for row in incidents:
            for action, body in (("acknowledge", {}), ("resolve", {"resolution": "drilled"})):
                done = await live.http.post(
                    f"/api/v1/incidents/{row['number']}/{action}",
                    json=body,
                    headers=live.auth("respond"),
                )
                assert done.status_code == 200, done.text
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=40)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    result = json.loads(stdout)
    assert [i["number"] for i in result["incidents"]] == [r["number"] for r in incidents]
    assert result["all_resolved"] is True
    for item in result["incidents"]:
        assert item["commander"] == "bob"  # the respond token's user acknowledged
        assert 0 <= item["ack_seconds"] <= item["resolve_seconds"]
    assert result["mean_resolve_seconds"] > 0

    title = f"CLI drill {name}"
    cli = await asyncio.create_subprocess_exec(
        str(INCIDENTFLOW), "trigger", title, "--service", live.service, "--drill",
        "--url", live.url, "--token", live.token("admin"), "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_env(),
    )  # fmt: skip
    out, err = await cli.communicate()
    assert cli.returncode == 0, err.decode()
    number = json.loads(out)["number"]
    (row,) = await wait_for(lambda: rows(live, "number = %s", number), message="CLI drill row")
    assert row["drill"] is True

    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nalerts:\n  - {at: soon, title: t}\n")
    refused = await asyncio.create_subprocess_exec(
        str(INCIDENTFLOW), "drill", "run", str(broken), "--url", live.url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_env(),
    )  # fmt: skip
    _, err = await refused.communicate()
    assert refused.returncode == 2
    assert "alerts.0.at" in err.decode()
