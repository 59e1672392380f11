"""A test policy on a seconds scale and a running worker + IncidentClient per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.worker import Worker

from activities.db import create_pool
from schemas.policy import Policy
from schemas.settings import Settings
from starter.client import IncidentClient
from worker.main import build_worker


def sec(value: float) -> timedelta:
    return timedelta(seconds=value)


def make_policy(
    *,
    level_delay: float = 1.5,
    levels: int = 3,
    repeat: int = 0,
    ack_within: float = 1.5,
    mitigate_within: float = 60,
    resolve_within: float = 120,
    update_every: float | None = None,
    reopen_window: float = 60,
    review_required: bool = False,
    auto_resolve: bool = True,
) -> Policy:
    """A policy whose clocks run in seconds: users alice, bob, carol, dave (console only)."""
    users = ["alice", "bob", "carol", "dave"]
    severities: dict[str, Any] = {}
    for sev in ("SEV1", "SEV2", "SEV3", "SEV4"):
        factor = 1 / 3 if sev == "SEV1" else 1.0  # SEV1's clocks are three times faster
        severities[sev] = {
            "ack_within": ack_within * factor,
            "mitigate_within": mitigate_within * factor,
            "resolve_within": resolve_within * factor,
            "update_every": update_every,
            "review_required": review_required,
            "review_after": 1,
        }
    return Policy.model_validate(
        {
            "users": [{"name": u} for u in users],  # no contacts: the console channel
            "channels": [{"name": "ops-console", "kind": "console"}],
            "escalation_policies": [
                {
                    "name": "test",
                    "repeat": repeat,
                    "levels": [
                        {"targets": [f"user:{users[i]}"], "delay": level_delay}
                        for i in range(levels)
                    ],
                }
            ],
            "severities": severities,
            "services": [
                {
                    "name": "checkout",
                    "escalation_policy": "test",
                    "integration_keys": ["checkout-key"],
                    "auto_resolve": auto_resolve,
                    "reopen_window": reopen_window,
                }
            ],
        }
    )


@dataclass
class Stack:
    client: IncidentClient
    temporal: Client
    pool: AsyncConnectionPool
    policy: Policy
    settings: Settings
    task_queue: str
    database_url: str

    def worker(self) -> Worker:
        return build_worker(
            self.temporal,
            pool=self.pool,
            policy=self.policy,
            settings=self.settings,
            task_queue=self.task_queue,
        )

    async def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            return await cur.fetchall()

    async def notified(self, number: str) -> list[dict[str, Any]]:
        return await self.rows(
            "SELECT * FROM notifications WHERE number = %s ORDER BY seq, id", number
        )


@asynccontextmanager
async def running_stack(
    temporal: Client,
    database_url: str,
    task_queue: str,
    policy: Policy,
    *,
    start_worker: bool = True,
    settings_overrides: dict[str, Any] | None = None,
) -> AsyncIterator[Stack]:
    pool = await create_pool(database_url, max_size=5)
    settings = Settings(
        database_url=database_url, temporal_task_queue=task_queue, **(settings_overrides or {})
    )
    stack = Stack(
        client=IncidentClient(temporal, policy, task_queue=task_queue),
        temporal=temporal,
        pool=pool,
        policy=policy,
        settings=settings,
        task_queue=task_queue,
        database_url=database_url,
    )
    try:
        if start_worker:
            async with stack.worker():
                yield stack
        else:
            yield stack
    finally:
        await pool.close()


HISTORIES = Path(__file__).parent / "histories"


async def record_history(stack: Stack, number: str, name: str) -> None:
    """Re-record ``tests/histories/<name>.json`` when INCIDENTFLOW_RECORD_HISTORIES=1.

    Record after a deliberate, replay-safe change to the workflows (see docs/deploy.md);
    the replay test then proves every recorded history still replays.
    """
    if os.environ.get("INCIDENTFLOW_RECORD_HISTORIES") != "1":
        return
    history = await stack.client.history(number)
    HISTORIES.mkdir(exist_ok=True)
    (HISTORIES / f"{name}.json").write_text(history.to_json())


async def record_workflow_history(temporal: Client, workflow_id: str, name: str) -> None:
    """:func:`record_history` for a workflow found by its ID (a heartbeat's)."""
    if os.environ.get("INCIDENTFLOW_RECORD_HISTORIES") != "1":
        return
    history = await temporal.get_workflow_handle(workflow_id).fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    (HISTORIES / f"{name}.json").write_text(history.to_json())
