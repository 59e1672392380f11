"""Similar past incidents and search, on a small corpus with known answers, written through
the real ticket activities into a database of its own (so other tests' incidents never rank)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.db import create_pool
from activities.knowledge import seen_before
from activities.notifications.activity import NotifyActivities
from activities.tickets import TicketActivities
from bench import similar as bench_similar
from schemas.activity_io import NotifyInput, RecordIncidentInput
from schemas.enums import EventKind, Status
from schemas.incident import IncidentSnapshot, TimelineEvent
from schemas.settings import Settings
from starter import knowledge_read
from tests.support_notifications import make_policy, targets
from tests.support_receivers import (
    HttpReceiver,
    http_receiver_fixture,  # noqa: F401 (fixture http_receiver)
)
from tests.support_surfaces import Live, live_app
from tests.support_tickets import T0, make_snapshot
from tests.test_dashboard import signed_in
from worker.devinfra import fresh_database

Pool = AsyncConnectionPool[psycopg.AsyncConnection]


@dataclass(frozen=True)
class Past:
    number: str
    service: str
    title: str
    description: str
    dedup_key: str
    #: minutes after T0 it was triggered
    at: int
    resolution: str | None = None
    #: minutes it took to resolve (None: still open)
    took: int | None = None
    note: str | None = None


CORPUS = [
    Past(
        "INC-1001",
        "checkout",
        "Checkout API connection pool exhausted",
        "pgbouncer pool saturated, clients waiting for a server connection",
        "pgbouncer-pool:db-01",
        0,
        "raised pgbouncer pool size to 400",
        14,
    ),
    Past(
        "INC-1002",
        "checkout",
        "Checkout latency p99 above 2s",
        "slow queries on the orders table",
        "latency:checkout",
        60,
        "added an index on orders.created_at",
        45,
        note="vacuum freeze ran during the spike",
    ),
    Past(
        "INC-1003",
        "search",
        "Search cluster disk full on node es-07",
        "the data volume of es-07 reached 95%",
        "disk-full:es-07",
        120,
        "deleted old indices",
        30,
    ),
    Past(
        "INC-1004",
        "payments",
        "Card processor timeouts",
        "the PSP answers after 30 s",
        "psp-timeouts",
        180,
        "failed over to the secondary PSP",
        20,
    ),
    Past(
        "INC-1005",
        "checkout",
        "Checkout pgbouncer pool exhausted again",
        "clients queue in pgbouncer",
        "pgbouncer-pool:db-02",
        240,
        "restarted pgbouncer with a bigger pool",
        9,
    ),
    Past(
        "INC-1006",
        "search",
        "Search cluster disk full on node es-11",
        "the data volume of es-11 reached 97%",
        "disk-full:es-11",
        300,
        "expanded the volume",
        25,
    ),
    Past(
        "INC-1007",
        "checkout",
        "Checkout pool exhausted on pgbouncer",
        "still open",
        "pgbouncer-pool:db-04",
        330,
    ),
]
#: the new incidents compared with the corpus (triggered after all of it)
PROBE = Past(
    "INC-1010",
    "checkout",
    "Checkout API: pgbouncer pool exhausted",
    "connections waiting on pgbouncer",
    "pgbouncer-pool:db-03",
    600,
)
DISK_PROBE = Past("INC-1011", "search", "Disk full on es-03 data node", "", "disk-full:es-03", 610)
#: the text of INC-1003's postmortem, found by search only through it
POSTMORTEM = "Root cause: the index retention policy was never applied to the logs cluster."


def snapshot_of(past: Past) -> tuple[IncidentSnapshot, list[TimelineEvent]]:
    created = T0 + timedelta(minutes=past.at)
    events = [TimelineEvent(seq=1, at=created, actor="monitoring", kind=EventKind.TRIGGERED)]
    if past.note:
        events.append(
            TimelineEvent(
                seq=2,
                at=created,
                actor="alice",
                kind=EventKind.NOTE_ADDED,
                details={"text": past.note},
            )
        )
    resolved_at = None
    if past.took is not None:
        resolved_at = created + timedelta(minutes=past.took)
        events.append(
            TimelineEvent(
                seq=len(events) + 1,
                at=resolved_at,
                actor="alice",
                kind=EventKind.RESOLVED,
                details={"resolution": past.resolution} if past.resolution else {},
            )
        )
    snapshot = make_snapshot(
        past.number,
        last_seq=len(events),
        status=Status.RESOLVED if resolved_at else Status.TRIGGERED,
        title=past.title,
        description=past.description,
        service=past.service,
        dedup_key=past.dedup_key,
        created_at=created,
        resolved_at=resolved_at,
        timeline=events,
    )
    return snapshot, events


@pytest.fixture(scope="module")
def knowledge_url(postgres_server: str) -> Iterator[str]:
    with fresh_database(postgres_server, "incidentflow_knowledge") as url:
        yield url


@pytest.fixture(scope="module")
async def corpus(knowledge_url: str) -> AsyncIterator[Pool]:
    pool = await create_pool(knowledge_url, max_size=4)
    tickets = TicketActivities(pool)
    try:
        for past in [*CORPUS, PROBE, DISK_PROBE]:
            snapshot, events = snapshot_of(past)
            await tickets.record_incident(RecordIncidentInput(snapshot=snapshot, events=events))
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO reviews (number, status, document) VALUES (%s, 'completed', %s)",
                ("INC-1003", POSTMORTEM),
            )
            await conn.execute("SELECT refresh_incident_search(%s)", ("INC-1003",))
        yield pool
    finally:
        await pool.close()


async def test_similar_ranks_the_same_family_first_and_says_why(corpus: Pool) -> None:
    found = await knowledge_read.similar(corpus, PROBE.number)
    assert found is not None
    numbers = [m.number for m in found.items]
    # same service and dedup-key family, alike titles: the pgbouncer incidents first
    assert set(numbers[:3]) == {"INC-1001", "INC-1005", "INC-1007"}
    # the same service with a shared term ("checkout") next; other services share nothing
    assert numbers[3:] == ["INC-1002"]
    best = found.items[0]
    assert best.reasons[0] == "same service and dedup-key family"
    assert any(r.startswith("similar title (") for r in best.reasons)
    assert best.shared_terms >= 3 and f"{best.shared_terms} shared terms" in best.why
    latency = found.items[3]
    assert latency.reasons == ["same service", "1 shared term"]
    assert latency.why == "same service, 1 shared term"
    pool_1001 = next(m for m in found.items if m.number == "INC-1001")
    assert pool_1001.resolution == "raised pgbouncer pool size to 400"
    assert pool_1001.time_to_resolve_seconds == 14 * 60
    open_one = next(m for m in found.items if m.number == "INC-1007")
    assert (open_one.resolution, open_one.time_to_resolve_seconds) == (None, None)


async def test_similar_disk_incidents_by_family_and_title(corpus: Pool) -> None:
    found = await knowledge_read.similar(corpus, DISK_PROBE.number)
    assert found is not None
    assert {m.number for m in found.items} == {"INC-1003", "INC-1006"}
    for match in found.items:
        assert match.same_family and match.reasons[0] == "same service and dedup-key family"


async def test_only_past_incidents_and_unknown_is_none(corpus: Pool) -> None:
    first = await knowledge_read.similar(corpus, "INC-1001")
    assert first is not None and first.items == []  # nothing came before it
    assert await knowledge_read.similar(corpus, "INC-999999") is None


async def test_seen_before_line_is_the_best_resolved_match(corpus: Pool) -> None:
    snapshot, _ = snapshot_of(PROBE)
    line = await seen_before(corpus, snapshot)
    found = await knowledge_read.similar(corpus, PROBE.number)
    assert found is not None
    best = next(m for m in found.items if m.resolved_at is not None)
    took = {"INC-1001": "14m", "INC-1005": "9m"}[best.number]
    assert line == f"Seen before: {best.number}, resolved in {took}: {best.resolution}"
    # a trigger unlike anything gets no line
    lonely = snapshot.model_copy(
        update={"title": "Quantum flux capacitor drift", "description": "", "dedup_key": None}
    )
    assert await seen_before(corpus, lonely) is None


async def search(pool: Pool, q: str) -> list[tuple[str, list[str]]]:
    page = await knowledge_read.search(pool, q)
    return [(hit.number, hit.matched_in) for hit in page.items]


async def test_search_finds_titles_notes_resolutions_and_postmortems(corpus: Pool) -> None:
    hits = await search(corpus, "pgbouncer")
    assert {n for n, _ in hits} == {"INC-1001", "INC-1005", "INC-1007", "INC-1010"}
    # a title holding the word ranks above a description or resolution holding it
    assert hits[-1] == ("INC-1001", ["description", "notes"])
    assert await search(corpus, "vacuum") == [("INC-1002", ["notes"])]
    assert await search(corpus, "retention policy") == [("INC-1003", ["postmortem"])]
    page = await knowledge_read.search(corpus, "retention")
    assert page.items[0].has_postmortem and "«retention»" in page.items[0].snippet
    # part of a word in a title, as the old board filter did
    assert {n for n, _ in await search(corpus, "bounc")} == {"INC-1005", "INC-1007", "INC-1010"}
    assert await search(corpus, "kubernetes") == []


async def test_search_leaves_drills_out_unless_asked(corpus: Pool) -> None:
    """A drill is not what happened: search skips it, as similar incidents and reports do,
    and finds it (marked) only with ``include_drills``."""
    drill = Past("INC-1020", "checkout", "Gameday: checkout token expired", "", "gameday-1", 700)
    snapshot, events = snapshot_of(drill)
    snapshot = snapshot.model_copy(update={"drill": True})
    await TicketActivities(corpus).record_incident(
        RecordIncidentInput(snapshot=snapshot, events=events)
    )
    assert await search(corpus, "gameday") == []
    page = await knowledge_read.search(corpus, "gameday", include_drills=True)
    assert [(h.number, h.drill) for h in page.items] == [("INC-1020", True)]
    real = await knowledge_read.search(corpus, "vacuum", include_drills=True)
    assert [(h.number, h.drill) for h in real.items] == [("INC-1002", False)]


async def test_search_document_follows_later_writes(corpus: Pool) -> None:
    snapshot, events = snapshot_of(CORPUS[3])
    note = TimelineEvent(
        seq=len(events) + 1,
        at=snapshot.created_at,
        actor="bob",
        kind=EventKind.NOTE_ADDED,
        details={"text": "tokenization service saturated"},
    )
    tickets = TicketActivities(corpus)
    await tickets.record_incident(
        RecordIncidentInput(
            snapshot=snapshot.model_copy(update={"last_seq": note.seq}), events=[note]
        )
    )
    assert await search(corpus, "tokenization") == [("INC-1004", ["notes"])]
    rows = await query(corpus, "SELECT dedup_family FROM incidents WHERE number = 'INC-1003'")
    assert rows == [{"dedup_family": "disk-full:es-#"}]


async def query(pool: Pool, sql: str) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql)
        return await cur.fetchall()


async def test_triggered_page_says_seen_before(corpus: Pool, http_receiver: HttpReceiver) -> None:
    """The real notify activity, delivering a trigger's page to a webhook: its text holds
    the "Seen before" line; an escalation's page of the same incident does not."""
    policy = make_policy(
        channels=[{"name": "ops", "kind": "webhook", "target": http_receiver.url("/ops")}]
    )
    acts = NotifyActivities(corpus, policy, Settings(incidentflow_base_url="http://x.test"))
    snapshot, _ = snapshot_of(PROBE)
    for seq, kind in ((1, EventKind.TRIGGERED), (2, EventKind.ESCALATED)):
        event = TimelineEvent(seq=seq, at=snapshot.created_at, actor="monitoring", kind=kind)
        await ActivityEnvironment().run(
            acts.notify, NotifyInput(incident=snapshot, event=event, targets=targets("channel:ops"))
        )
    triggered, escalated = (json.loads(r.body)["text"] for r in http_receiver.requests("/ops"))
    line = await seen_before(corpus, snapshot)
    assert line is not None and line.startswith("Seen before: INC-100")
    assert line in triggered
    assert "Seen before" not in escalated


# ---------------------------------------------------------------------------- API and page
@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def live(temporal_client: Client, database_url: str) -> AsyncIterator[Live]:
    async with live_app(temporal_client, database_url, f"tq-knowledge-{uuid.uuid4()}") as app:
        yield app


async def test_similar_and_search_over_the_api_and_on_the_incident_page(live: Live) -> None:
    word = f"zq{uuid.uuid4().hex[:8]}"  # a term no other test's incident holds
    first = await live.trigger(
        f"Orders replica lag {word} above 30s", dedup_key=f"replica-lag-{word}:db-1"
    )
    resolved = await live.http.post(
        f"/api/v1/incidents/{first['number']}/resolve",
        json={"resolution": "promoted a fresh replica"},
        headers=live.auth("respond"),
    )
    assert resolved.status_code == 200, resolved.text
    await live.ticket(first["number"], status="resolved")
    second = await live.trigger(
        f"Orders replica lag {word} above 60s", dedup_key=f"replica-lag-{word}:db-2"
    )

    url = f"/api/v1/incidents/{second['number']}/similar"
    response = await live.http.get(url, headers=live.auth("read"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["number"] == second["number"]
    top = body["items"][0]
    assert top["number"] == first["number"]
    assert top["resolution"] == "promoted a fresh replica"
    assert top["time_to_resolve_seconds"] is not None
    assert top["why"].startswith("same service and dedup-key family, similar title")
    assert (await live.http.get(url)).status_code == 401
    missing = await live.http.get(
        "/api/v1/incidents/INC-999999999/similar", headers=live.auth("read")
    )
    assert missing.status_code == 404
    bad = await live.http.get(f"{url}?limit=0", headers=live.auth("read"))
    assert bad.status_code == 422 and "limit" in bad.text

    found = await live.http.get("/api/v1/search", params={"q": word}, headers=live.auth("read"))
    assert found.status_code == 200
    assert [h["number"] for h in found.json()["items"]] == [second["number"], first["number"]]
    assert [h["drill"] for h in found.json()["items"]] == [False, False]
    with_drills = await live.http.get(
        "/api/v1/search", params={"q": word, "include_drills": "true"}, headers=live.auth("read")
    )
    assert with_drills.status_code == 200
    assert [h["number"] for h in with_drills.json()["items"]] == [second["number"], first["number"]]
    not_bool = await live.http.get(
        "/api/v1/search", params={"q": word, "include_drills": "maybe"}, headers=live.auth("read")
    )
    assert not_bool.status_code == 422 and "include_drills" in not_bool.text
    for blank in ("", "   "):
        refused = await live.http.get(
            "/api/v1/search", params={"q": blank}, headers=live.auth("read")
        )
        assert refused.status_code == 422 and "q" in refused.text

    async with signed_in(live, "read") as client:
        page = await client.get(f"/dashboard/incidents/{second['number']}")
        assert page.status_code == 200
        section = page.text[page.text.index('id="similar"') :]
        assert f'data-number="{first["number"]}"' in section
        assert "promoted a fresh replica" in section
        board = await client.get("/dashboard/", params={"status": "all", "q": word})
        assert f'data-number="{first["number"]}"' in board.text
        assert f'data-number="{second["number"]}"' in board.text


async def test_bench_similar_runs_at_a_tiny_size(postgres_server: str) -> None:
    """bench/similar.py's seeding and timing, so it does not rot between runs."""
    with fresh_database(postgres_server, "incidentflow_bench_similar") as url:
        result = await bench_similar.run(url, incidents=120, lookups=6)
    figures = {f.name: f for f in result.figures}
    assert figures["look-ups with a match"].value == 6
    p99 = figures["similar look-up p99"].value
    assert p99 is not None and p99 > 0
