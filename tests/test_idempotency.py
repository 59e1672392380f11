"""Idempotency-Key on the native API's POSTs, and responder Update ids carried across
continue-as-new (starter/api/idempotency.py, IncidentWorkflow._action_ids)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from temporalio.client import Client

from schemas.actions import AcknowledgeInput
from schemas.actors import Person
from schemas.enums import Action
from schemas.incident import Alert
from tests.conftest import wait_for
from tests.support_api import ApiStack, api_stack
from tests.support_drills import fetch_all

REPLAYED = "Idempotent-Replayed"


async def create(api: ApiStack, body: dict[str, Any], key: str, token: str = "ingest") -> Any:
    headers = {**api.auth(token), "Idempotency-Key": key}
    return await api.http.post("/api/v1/incidents", json=body, headers=headers)


async def test_a_retried_post_gets_the_first_answer_and_changes_nothing(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with api_stack(temporal_client, database_url, task_queue) as api:
        body = {"title": "db down", "service": api.names.service, "dedup_key": "idem-1"}
        key = str(uuid.uuid4())
        first = await create(api, body, key)
        again = await create(api, body, key)
        assert first.status_code == again.status_code == 201, again.text
        assert again.json() == first.json()
        assert again.headers[REPLAYED] == "true"
        assert again.headers["Location"] == first.headers["Location"]
        number = first.json()["number"]

        # the same key for another request: refused, naming it
        other = await create(api, {**body, "title": "something else"}, key)
        assert other.status_code == 409 and key in other.json()["message"]
        # keys are per credential: the admin token's same key is a new request (a repeat)
        admin = await create(api, body, key, token="admin")
        assert (admin.status_code, admin.json()["alert_count"]) == (200, 2)
        # a malformed key is refused with the field named
        bad = await create(api, body, "bad key with spaces")
        assert bad.status_code == 422
        assert bad.json()["details"][0]["field"] == "header.Idempotency-Key"

        # concurrent duplicates of one acknowledge: one acts; the others replay its answer
        # or are told it is still running; none acts again or is refused with "already"
        ack_key = str(uuid.uuid4())
        url = f"/api/v1/incidents/{number}/acknowledge"
        headers = {**api.auth("respond"), "Idempotency-Key": ack_key}
        answers = await asyncio.gather(
            *(api.http.post(url, json={"note": "mine"}, headers=headers) for _ in range(6))
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses.count(200) >= 1 and set(statuses) <= {200, 409}, statuses
        for answer in answers:
            if answer.status_code == 409:
                assert answer.headers["Retry-After"] == "1"
                assert "still being processed" in answer.json()["message"]
        fresh = [a for a in answers if a.status_code == 200 and REPLAYED not in a.headers]
        assert len(fresh) == 1

        async def one_ack() -> bool:
            got = await api.http.get(f"/api/v1/incidents/{number}", headers=api.auth("read"))
            return [e["kind"] for e in got.json()["timeline"]].count("acknowledged") == 1

        await wait_for(one_ack, message="one acknowledged event")

        # kept 24 h: an older answer is forgotten and the request runs again, where the
        # incident still recognises its alert id (token and key): counted once, as created
        await fetch_all(
            database_url,
            "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' "
            "WHERE key = %s RETURNING key",
            key,
        )
        later = await create(api, body, key)
        assert later.status_code == 201 and REPLAYED not in later.headers
        assert (later.json()["number"], later.json()["alert_count"]) == (number, 2)


async def test_an_update_resent_after_continue_as_new_is_recognised(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with api_stack(temporal_client, database_url, task_queue) as api:
        client = api.stack.client
        key = f"can-{uuid.uuid4().hex[:8]}"
        ref = await client.trigger(Alert(service=api.names.service, title="x", dedup_key=key))
        ack = AcknowledgeInput(actor=Person(name="alice"))
        first = await client.act(ref.number, Action.ACKNOWLEDGE, ack, action_id="alice:k1")
        assert first.status == "acknowledged"
        # enough repeats to pass the test server's continue-as-new suggestion (400 events)
        gate = asyncio.Semaphore(32)

        async def repeat() -> None:
            async with gate:
                await client.enqueue(Alert(service=api.names.service, title="x", dedup_key=key))

        await asyncio.gather(*(repeat() for _ in range(450)))

        async def new_run() -> tuple[str, int] | None:
            snapshot = await client.get(ref.number)
            moved = snapshot.run_id != ref.run_id and snapshot.alert_count == 451
            return None if not moved else (snapshot.run_id, snapshot.alert_count)

        await wait_for(new_run, timeout=30, message="a continue-as-new")
        again = await client.act(ref.number, Action.ACKNOWLEDGE, ack, action_id="alice:k1")
        assert again.status == "acknowledged"
        snapshot = await client.get(ref.number)
        assert [e.kind for e in snapshot.timeline].count("acknowledged") == 1
