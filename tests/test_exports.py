"""Audit exports over real HTTP (uvicorn) from a database of their own: CSV with the header row
first, JSON Lines, every timeline, the filters, drills left out, CSV injection neutralised,
scopes; the CLI's ``export`` as a subprocess."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from activities.db import create_pool
from activities.tickets import TicketActivities
from bench.similar import corpus as bench_corpus
from schemas.activity_io import RecordIncidentInput
from schemas.settings import Settings
from starter.api.app import create_app
from starter.exports_read import EVENT_COLUMNS, INCIDENT_COLUMNS
from tests.support_api import ApiNames, api_policy
from tests.support_cli import INCIDENTFLOW, clean_env
from tests.support_surfaces import serve_http
from tests.support_tickets import make_snapshot
from worker.devinfra import fresh_database

Pool = AsyncConnectionPool[psycopg.AsyncConnection]
#: more than one batch of the server-side cursor (``exports_read.BATCH``)
ROWS = 1500
START = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def exports_url(postgres_server: str) -> Iterator[str]:
    with fresh_database(postgres_server, "incidentflow_exports") as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def served(
    exports_url: str, temporal_client: Client
) -> AsyncIterator[tuple[str, ApiNames, Pool]]:
    pool = await create_pool(exports_url, max_size=4)
    incidents, events = bench_corpus(ROWS, random.Random(5), START)
    async with pool.connection() as conn:
        cur = conn.cursor()
        columns = (
            "number, number_seq, workflow_id, title, description, service, status, severity, "
            "priority, impact, urgency, category, dedup_key, snapshot, last_seq, created_at, "
            "acknowledged_at, resolved_at, closed_at"
        )
        async with cur.copy(f"COPY incidents ({columns}) FROM STDIN") as copy:
            for row in incidents:
                await copy.write_row(row)
        async with cur.copy(
            "COPY incident_events (number, seq, at, actor, kind, details) FROM STDIN"
        ) as copy:
            for event in events:
                await copy.write_row(event)
    tickets = TicketActivities(pool)
    for number, extra in (
        ("INC-900001", {"title": '=HYPERLINK("http://evil.example","x")', "service": "forms"}),
        ("INC-900002", {"title": "Game day", "service": "forms", "drill": True}),
    ):
        snapshot = make_snapshot(number, created_at=START + timedelta(days=1), **extra)
        await tickets.record_incident(RecordIncidentInput(snapshot=snapshot))
    policy, names = api_policy()
    app = create_app(Settings(database_url=exports_url), policy, temporal=temporal_client)
    try:
        async with serve_http(app) as url:
            yield url, names, pool
    finally:
        await pool.close()


async def get(served: tuple[str, ApiNames, Pool], path: str, **params: Any) -> httpx.Response:
    url, names, _ = served
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        return await http.get(f"/api/v1/exports/{path}", params=params, headers=names.auth("read"))


def parse_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def test_incidents_csv_streams_every_row_header_first(served: Any) -> None:
    response = await get(served, "incidents.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="incidents.csv"' in response.headers["content-disposition"]
    rows = parse_csv(response.text)
    assert rows[0] == list(INCIDENT_COLUMNS)
    assert len(rows) - 1 == ROWS + 1 == int(response.headers["x-export-rows"])  # no drill
    numbers = [r[0] for r in rows[1:]]
    assert len(set(numbers)) == len(numbers) and "INC-900002" not in numbers
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["number"] == "INC-1" and first["resolution"] == ""  # COPY wrote no refresh
    assert float(first["time_to_resolve_seconds"]) > 0
    assert datetime.fromisoformat(first["created_at"]) >= START - timedelta(days=366)
    evil = next(r for r in rows if r[0] == "INC-900001")
    assert evil[1] == '\'=HYPERLINK("http://evil.example","x")'


async def test_filters_drills_jsonl_and_events(served: Any) -> None:
    forms = parse_csv((await get(served, "incidents.csv", service="forms")).text)
    assert [r[0] for r in forms[1:]] == ["INC-900001"]
    with_drills = parse_csv(
        (await get(served, "incidents.csv", service="forms", include_drills="true")).text
    )
    assert [r[0] for r in with_drills[1:]] == ["INC-900001", "INC-900002"]
    sev1 = parse_csv((await get(served, "incidents.csv", severity="SEV1")).text)
    assert sev1[1:] and all(r[4] == "SEV1" for r in sev1[1:])
    window = parse_csv(
        (
            await get(
                served,
                "incidents.csv",
                since=(START - timedelta(days=30)).isoformat(),
                until=START.isoformat(),
            )
        ).text
    )
    assert 0 < len(window) - 1 < ROWS / 2
    assert all(
        START - timedelta(days=30) <= datetime.fromisoformat(r[15]) < START for r in window[1:]
    )

    jsonl = await get(served, "incidents.jsonl", service="forms")
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    (line,) = jsonl.text.splitlines()
    item = json.loads(line)
    assert list(item) == list(INCIDENT_COLUMNS)
    assert item["title"].startswith("=HYPERLINK")  # JSON needs no neutralising
    assert item["labels"]["team"] == "payments"

    events = await get(served, "events.csv")
    rows = parse_csv(events.text)
    assert rows[0] == list(EVENT_COLUMNS)
    assert len(rows) - 1 == 3 * ROWS == int(events.headers["x-export-rows"])
    triggered = dict(zip(rows[0], rows[1], strict=True))
    assert (triggered["number"], triggered["seq"], triggered["kind"]) == ("INC-1", "1", "triggered")
    resolved = dict(zip(rows[0], rows[3], strict=True))
    assert json.loads(resolved["details"])["resolution"]


async def test_exports_need_the_read_scope_and_good_filters(served: Any) -> None:
    url, names, _ = served
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/api/v1/exports/incidents.csv")).status_code == 401
        ingest = await http.get("/api/v1/exports/events.csv", headers=names.auth("ingest"))
        assert ingest.status_code == 403
        bad = await http.get(
            "/api/v1/exports/incidents.csv?severity=SEV9", headers=names.auth("read")
        )
        assert bad.status_code == 422 and "severity" in bad.text
        naive = await http.get(
            "/api/v1/exports/incidents.jsonl?since=2026-01-01T00:00", headers=names.auth("read")
        )
        assert naive.status_code == 422 and "since" in naive.text


async def test_cli_export_writes_the_file(served: Any, tmp_path: Path) -> None:
    url, names, _ = served
    target = tmp_path / "sev2.csv"
    process = await asyncio.create_subprocess_exec(
        str(INCIDENTFLOW), "export", "incidents", "--severity", "sev2", "--output", str(target),
        "--url", url, "--token", names.tokens["read"],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_env(),
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    rows = parse_csv(target.read_text())
    assert rows[0] == list(INCIDENT_COLUMNS)
    assert rows[1:] and all(r[4] == "SEV2" for r in rows[1:])
    assert f"{len(rows) - 1} incidents rows written" in err.decode()

    events = await asyncio.create_subprocess_exec(
        str(INCIDENTFLOW), "export", "events", "--format", "jsonl", "--url", url,
        "--token", names.tokens["read"],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_env(),
    )  # fmt: skip
    _, err = await events.communicate()
    assert events.returncode == 2 and "only as csv" in err.decode()
