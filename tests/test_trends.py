"""Trends and recurring problems on a small corpus with known answers, written through the real
ticket activities into a database of its own; the API routes over it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from activities.db import create_pool
from activities.tickets import TicketActivities
from schemas.activity_io import RecordIncidentInput
from schemas.enums import Category, Status
from schemas.settings import Settings
from starter import trends_read
from starter.api.app import create_app
from tests.support_api import api_policy, serve
from tests.support_tickets import make_snapshot
from worker.devinfra import fresh_database

Pool = AsyncConnectionPool[psycopg.AsyncConnection]
NOW = datetime.now(UTC)
THIS_WEEK = NOW - timedelta(minutes=5)
LAST_WEEK = NOW - timedelta(days=7)

#: (number, service, title, dedup key, created, minutes to resolve or None, alerts, extra)
CORPUS: list[tuple[str, str, str, str | None, datetime, int | None, int, dict[str, Any]]] = [
    ("INC-1", "db", "Disk full on db-01", "disk-full:db-01", THIS_WEEK, 30, 1, {}),
    ("INC-2", "db", "Disk full on db-02", "disk-full:db-02", THIS_WEEK, 20, 1, {}),
    ("INC-3", "db", "Disk full on db-03", "disk-full:db-03", LAST_WEEK, 45, 1, {}),
    ("INC-4", "db", "Disk full on db-04", "disk-full:db-04", THIS_WEEK, None, 1, {}),
    ("INC-5", "web", "Latency above 500ms on web-1", None, THIS_WEEK, 10, 20, {}),
    ("INC-6", "web", "Latency above 900ms on web-2", None, LAST_WEEK, 12, 20, {}),
    ("INC-7", "web", "Latency above 700ms on web-3", None, LAST_WEEK, 8, 20, {}),
    ("INC-8", "web", "Certificate expires soon", "cert:web", LAST_WEEK, 5, 1, {}),
    ("INC-9", "web", "Certificate expires soon", "cert:web", THIS_WEEK, 5, 1,
     {"merged_into": "INC-8", "category": Category.NETWORK}),
    # a drill of the disk family, and an old one outside the 30 days
    ("INC-10", "db", "Disk full on db-05", "disk-full:db-05", THIS_WEEK, 3, 1, {"drill": True}),
    ("INC-11", "db", "Disk full on db-06", "disk-full:db-06", NOW - timedelta(days=40), 9, 1, {}),
]  # fmt: skip


@pytest.fixture(scope="module")
def trends_url(postgres_server: str) -> Iterator[str]:
    with fresh_database(postgres_server, "incidentflow_trends") as url:
        yield url


@pytest.fixture(scope="module")
async def corpus(trends_url: str) -> AsyncIterator[Pool]:
    pool = await create_pool(trends_url, max_size=4)
    tickets = TicketActivities(pool)
    try:
        for number, service, title, key, created, took, alerts, extra in CORPUS:
            resolved = created + timedelta(minutes=took) if took is not None else None
            snapshot = make_snapshot(
                number,
                status=Status.RESOLVED if resolved else Status.TRIGGERED,
                title=title,
                service=service,
                dedup_key=key,
                created_at=created,
                acknowledged_at=created + timedelta(minutes=2),
                resolved_at=resolved,
                alert_count=alerts,
                **extra,
            )
            await tickets.record_incident(RecordIncidentInput(snapshot=snapshot))
        yield pool
    finally:
        await pool.close()


async def test_recurring_groups_by_family_or_masked_title(corpus: Pool) -> None:
    found = await trends_read.recurring(corpus)
    assert [(g.service, g.key, g.count) for g in found.groups] == [
        ("db", "family disk-full:db-#", 4),
        ("web", "title latency above # on web-#", 3),
    ]
    disk = found.groups[0]
    assert disk.numbers == ["INC-4", "INC-2", "INC-1", "INC-3"] or set(disk.numbers) == {
        "INC-1", "INC-2", "INC-3", "INC-4",
    }  # fmt: skip
    assert disk.open == 1
    # the most recently resolved of the group: INC-1 or INC-2 (both this week)
    assert disk.last_time_to_resolve_seconds in (30 * 60, 20 * 60)
    with_drills = await trends_read.recurring(corpus, include_drills=True)
    assert with_drills.groups[0].count == 5
    longer = await trends_read.recurring(corpus, days=60, min_count=5)
    assert [(g.key, g.count) for g in longer.groups] == [("family disk-full:db-#", 5)]


async def test_trends_by_week_service_category_and_the_noisiest(corpus: Pool) -> None:
    found = await trends_read.trends(corpus, since=NOW - timedelta(days=21))
    counts = {(w.week, w.key): w.count for w in found.by_service}
    assert len(found.weeks) == 2
    last, this = found.weeks
    assert counts == {(last, "db"): 1, (this, "db"): 3, (last, "web"): 3, (this, "web"): 2}
    db_this = next(w for w in found.by_service if (w.week, w.key) == (this, "db"))
    assert db_this.mtta_seconds == 120
    assert db_this.mttr_seconds == pytest.approx(25 * 60)  # INC-4 is still open
    by_category = {(w.week, w.key): w.count for w in found.by_category}
    assert by_category[(this, "network")] == 1
    wow = {
        w.service: (w.last_week, w.this_week, w.change, w.change_ratio)
        for w in found.week_over_week
    }
    assert wow == {"db": (1, 3, 2, 2.0), "web": (3, 2, -1, round(-1 / 3, 4))}
    assert [(n.service, n.alerts, n.incidents, n.noise) for n in found.noisiest] == [
        ("web", 62, 5, 1),
        ("db", 4, 4, 0),
    ]


async def test_report_routes(corpus: Pool, trends_url: str, temporal_client: Client) -> None:
    policy, names = api_policy()
    app = create_app(Settings(database_url=trends_url), policy, temporal=temporal_client)
    async with serve(app) as http:
        trends = await http.get("/api/v1/reports/trends?weeks=3", headers=names.auth("read"))
        assert trends.status_code == 200, trends.text
        assert {w["service"] for w in trends.json()["week_over_week"]} == {"db", "web"}
        recurring = await http.get("/api/v1/reports/recurring", headers=names.auth("read"))
        assert [g["count"] for g in recurring.json()["groups"]] == [4, 3]
        for bad in ("weeks=0", "weeks=105"):
            refused = await http.get(f"/api/v1/reports/trends?{bad}", headers=names.auth("read"))
            assert refused.status_code == 422
        refused = await http.get(
            "/api/v1/reports/recurring?min_count=1", headers=names.auth("read")
        )
        assert refused.status_code == 422
        assert (await http.get("/api/v1/reports/recurring")).status_code == 401
