"""Drill: the SMTP server and the webhook receiver are down (connection refused) when an
incident pages; notifications retry and each is delivered exactly once when they return."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import yaml
from temporalio.client import Client

from activities.db import create_pool
from schemas.enums import EventKind
from schemas.incident import Alert
from schemas.policy import Policy
from schemas.settings import Settings
from starter.client import IncidentClient
from tests.conftest import wait_for
from tests.support_drills import (
    ReceiverOnPort,
    assert_verified,
    deliveries_per_key,
    drill_policy_yaml,
    fetch_all,
    fresh_database,
    terminate_all,
)
from tests.support_receivers import SmtpServer
from worker.devinfra import free_port
from worker.main import build_worker

INCIDENTS = 3


async def test_smtp_and_webhook_down_then_back_deliver_once(
    temporal_client: Client, postgres_server: str, task_queue: str
) -> None:
    smtp = SmtpServer()  # its port is chosen, nothing listens on it yet
    receiver = ReceiverOnPort(free_port())  # not listening until started
    user = {
        "name": "alice",
        "email": "alice@example.com",
        "webhook": receiver.url("/alice"),
    }
    policy = Policy.model_validate(
        yaml.safe_load(drill_policy_yaml(users=[user], level_delay="300s"))
    )
    with fresh_database(postgres_server) as database_url:
        settings = Settings(
            database_url=database_url,
            temporal_task_queue=task_queue,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
        )
        pool = await create_pool(database_url, max_size=5)
        try:
            worker = build_worker(
                temporal_client, pool=pool, policy=policy, settings=settings, task_queue=task_queue
            )
            async with worker:
                client = IncidentClient(temporal_client, policy, task_queue=task_queue)
                prefix = uuid.uuid4().hex[:8]
                refs = [
                    await client.trigger(
                        Alert(service="checkout", title=f"down {i}", dedup_key=f"{prefix}-{i}")
                    )
                    for i in range(INCIDENTS)
                ]

                async def rows() -> list[tuple[Any, ...]]:
                    return await fetch_all(
                        database_url,
                        "SELECT key, channel, status, attempts FROM notifications ORDER BY key",
                    )

                async def retrying(channel: str) -> bool:
                    found = [r for r in await rows() if r[1] == channel]
                    return len(found) == INCIDENTS and all(
                        r[2] == "pending" and r[3] >= 2 for r in found
                    )

                await wait_for(lambda: retrying("webhook"), timeout=20, message="webhook retries")
                await wait_for(lambda: retrying("email"), timeout=20, message="email retries")

                receiver.start()

                async def sent(channel: str) -> bool:
                    found = [r for r in await rows() if r[1] == channel]
                    return len(found) == INCIDENTS and all(r[2] == "sent" for r in found)

                await wait_for(lambda: sent("webhook"), timeout=30, message="webhooks sent")
                smtp.__enter__()
                await wait_for(lambda: sent("email"), timeout=40, message="emails sent")

                keys = {r[0]: r[1] for r in await rows()}
                webhook_keys = {k for k, channel in keys.items() if channel == "webhook"}
                email_keys = {k for k, channel in keys.items() if channel == "email"}
                assert deliveries_per_key(receiver) == Counter(dict.fromkeys(webhook_keys, 1))
                mailed = Counter(m["X-Incidentflow-Delivery"] for m in smtp.sink.messages)
                assert mailed == Counter(dict.fromkeys(email_keys, 1))
                for ref in refs:
                    snap = await client.get(ref.number)
                    assert EventKind.NOTIFICATION_FAILED not in [e.kind for e in snap.timeline]
                await assert_verified(temporal_client, database_url, task_queue)
        finally:
            if receiver._thread.is_alive():
                receiver.stop()
            if smtp.controller._thread is not None:
                smtp.__exit__()
            await terminate_all(temporal_client, task_queue)
            await pool.close()
