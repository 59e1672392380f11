"""Drills: a duplicate flood (5,000 triggers for one alert key from 32 concurrent clients)
makes one incident with the exact count; racing responders (two acknowledges at once) make
one winner and one rejection."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

import pytest
from temporalio.client import Client

from schemas.enums import EventKind, Role, Status
from schemas.incident import Alert, IncidentRef
from starter.client import IncidentClient
from starter.errors import ActionRejected
from tests.support_api import api_stack
from tests.support_drills import assert_verified, fetch_all, fresh_database, terminate_all
from tests.support_incidents import make_policy, running_stack

FLOOD = 5000
CLIENTS = 32
RACES = 20


@pytest.mark.slow
@pytest.mark.timeout(600)  # 5,000 Updates to one workflow, ten in flight at a time: 4-7 min
async def test_duplicate_flood_makes_one_incident_with_exact_count(
    temporal_client: Client, postgres_server: str, task_queue: str
) -> None:
    policy = make_policy(level_delay=300, ack_within=300)
    key = f"flood-{uuid.uuid4().hex[:8]}"
    alert = Alert(service="checkout", title="disk full", dedup_key=key)
    with fresh_database(postgres_server) as database_url:
        async with running_stack(temporal_client, database_url, task_queue, policy) as st:
            try:
                clients = [
                    IncidentClient(temporal_client, policy, task_queue=task_queue)
                    for _ in range(CLIENTS)
                ]
                shares = [FLOOD // CLIENTS + (i < FLOOD % CLIENTS) for i in range(CLIENTS)]

                async def send(client: IncidentClient, count: int) -> list[IncidentRef]:
                    return [await client.trigger(alert) for _ in range(count)]

                started = time.monotonic()
                batches = await asyncio.gather(
                    *(send(c, n) for c, n in zip(clients, shares, strict=True))
                )
                took = time.monotonic() - started
                refs = [ref for batch in batches for ref in batch]
                assert len(refs) == FLOOD
                assert len({r.number for r in refs}) == 1
                assert sum(r.created for r in refs) == 1
                number = refs[0].number
                # no answer claims more alerts than were sent
                highest = max(r.alert_count for r in refs)
                assert highest == FLOOD, f"{FLOOD} triggers counted as {highest}"

                snap = await st.client.get(number)
                assert snap.alert_count == FLOOD, f"{FLOOD} triggers counted as {snap.alert_count}"
                assert snap.status == Status.TRIGGERED
                coalesced = [e for e in snap.timeline if e.kind == EventKind.ALERT_REPEATED]
                assert sum(int(e.details["count"]) for e in coalesced) == FLOOD - 1
                await assert_verified(temporal_client, database_url, task_queue)
                [(count,)] = await fetch_all(
                    database_url, "SELECT alert_count FROM incidents WHERE number = %s", number
                )
                assert count == FLOOD
                print(f"\nflood: {FLOOD} triggers in {took:.1f}s ({FLOOD / took:.0f}/s)")
            finally:
                await terminate_all(temporal_client, task_queue)


async def test_racing_acknowledges_one_wins_one_is_rejected(
    temporal_client: Client, postgres_server: str, task_queue: str
) -> None:
    policy = make_policy(level_delay=300, ack_within=300)
    prefix = uuid.uuid4().hex[:8]
    with fresh_database(postgres_server) as database_url:
        async with running_stack(temporal_client, database_url, task_queue, policy) as st:
            try:
                refs = await asyncio.gather(
                    *(
                        st.client.trigger(
                            Alert(service="checkout", title="race", dedup_key=f"{prefix}-{i}")
                        )
                        for i in range(RACES)
                    )
                )
                other = IncidentClient(temporal_client, policy, task_queue=task_queue)
                for ref in refs:
                    outcomes: Sequence[object] = await asyncio.gather(
                        st.client.acknowledge(ref.number, "alice"),
                        other.acknowledge(ref.number, "bob"),
                        return_exceptions=True,
                    )
                    won = [o for o in outcomes if not isinstance(o, BaseException)]
                    lost = [o for o in outcomes if isinstance(o, BaseException)]
                    assert len(won) == 1 and len(lost) == 1, outcomes
                    assert isinstance(lost[0], ActionRejected), lost[0]
                    assert "acknowledged: cannot acknowledge" in str(lost[0])
                    winner = "alice" if outcomes[0] is won[0] else "bob"
                    snap = await st.client.get(ref.number)
                    acks = [e for e in snap.timeline if e.kind == EventKind.ACKNOWLEDGED]
                    assert [e.actor for e in acks] == [winner]
                    assert snap.responders[Role.COMMANDER] == winner
                await assert_verified(temporal_client, database_url, task_queue)
            finally:
                await terminate_all(temporal_client, task_queue)


async def test_racing_acknowledges_over_http_one_200_one_409(
    temporal_client: Client, postgres_server: str, task_queue: str
) -> None:
    with fresh_database(postgres_server) as database_url:
        async with api_stack(temporal_client, database_url, task_queue) as api:
            try:
                for i in range(RACES // 2):
                    created = await api.http.post(
                        "/api/v1/incidents",
                        json={"title": f"race {i}", "service": api.names.service},
                        headers=api.auth("ingest"),
                    )
                    number = created.json()["number"]
                    url = f"/api/v1/incidents/{number}/acknowledge"
                    first, second = await asyncio.gather(
                        api.http.post(url, json={"note": "mine"}, headers=api.auth("respond")),
                        api.http.post(url, json={"note": "no, mine"}, headers=api.auth("admin")),
                    )
                    statuses = sorted([first.status_code, second.status_code])
                    assert statuses == [200, 409], (first.text, second.text)
                    loser = first if first.status_code == 409 else second
                    assert loser.json()["error"] == "action_rejected"
                    assert "acknowledged: cannot acknowledge" in loser.json()["message"]
                await assert_verified(temporal_client, database_url, task_queue)
            finally:
                await terminate_all(temporal_client, task_queue)
