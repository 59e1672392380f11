"""Session fixtures: a real Temporal dev server and a real PostgreSQL, one of each per session.

Each test gets its own task queue (``task_queue``) so workers of different tests never
see each other's tasks.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from schemas import search_attributes
from worker.devinfra import EmbeddedPostgres, fresh_database, temporal_binary

T = TypeVar("T")

#: lowered so continue-as-new is exercised by ordinary tests, not only the flood test
SUGGEST_CONTINUE_AS_NEW_AFTER = 400


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
        ui=False,
        dev_server_extra_args=[
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SUGGEST_CONTINUE_AS_NEW_AFTER}",
            "--log-level",
            "error",
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server: ``DATABASE_URL`` if set, else an embedded one."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    pg = EmbeddedPostgres.temporary()
    try:
        yield pg.start()
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def database_url(postgres_server: str) -> Iterator[str]:
    """A fresh, migrated database for this test session, dropped at the end."""
    with fresh_database(postgres_server, "incidentflow_test") as url:
        yield url


async def wait_for(
    probe: Callable[[], Awaitable[T]] | Callable[[], T],
    *,
    timeout: float = 15.0,  # noqa: ASYNC109 - a polling deadline, not an I/O timeout
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll ``probe`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        last = result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}; last={last!r}")
        await asyncio.sleep(interval)
