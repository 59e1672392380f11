"""Schemathesis over the app's own OpenAPI document, against the real stack.

Every operation gets positive and negative cases (bounded, derandomised so CI is stable);
every response must be below 500 and match the documented status codes, content types,
headers and body schemas. Cases are generated in a worker thread (Hypothesis is synchronous)
and sent on the test's event loop through httpx, where the app, its Temporal client and the
worker live.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from temporalio.client import Client

from starter.api.context import ApiOptions
from tests.support_api import ApiStack, api_stack

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 10}
#: the whole run must stay well under two minutes
BUDGET_SECONDS = 100
BASE_URL = "http://incidentflow.test"


def _send(api: ApiStack, loop: asyncio.AbstractEventLoop, kwargs: dict[str, Any]) -> httpx.Response:
    request: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "headers": kwargs.get("headers") or {},
        "params": kwargs.get("params"),
    }
    if kwargs.get("cookies"):
        request["headers"] = {
            **request["headers"],
            "Cookie": "; ".join(f"{k}={v}" for k, v in kwargs["cookies"].items()),
        }
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        request["content"] = data.encode() if isinstance(data, str) else data
    future = asyncio.run_coroutine_threadsafe(api.http.request(**request), loop)
    return future.result(timeout=60)


async def create_incident(api: ApiStack, title: str) -> str:
    created = await api.http.post(
        "/api/v1/incidents",
        json={"title": title, "service": api.names.service},
        headers=api.auth("ingest"),
    )
    assert created.status_code == 201, created.text
    number: str = created.json()["number"]
    return number


def _fuzz_operation(
    api: ApiStack,
    loop: asyncio.AbstractEventLoop,
    operation: Any,
    mode: GenerationMode,
    numbers: list[str],
    deadline: float,
) -> int:
    """Run one operation's cases in one generation mode; return how many requests went out."""
    tokens = [api.names.tokens["admin"]] * 4 + [
        api.names.tokens["read"],
        api.names.tokens["respond"],
        "not-a-token",
    ]
    creating = operation.path == "/api/v1/incidents" and mode == GenerationMode.POSITIVE
    sent = 0

    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        nonlocal sent
        if time.monotonic() > deadline:
            return
        params = case.path_parameters or {}
        if "number" in params:
            params["number"] = data.draw(st.sampled_from([*numbers, "INC-999999999999"]))
        if "integration_key" in params:
            params["integration_key"] = data.draw(st.sampled_from([api.names.key, "nope"]))
        body = case.body
        if isinstance(body, dict) and data.draw(st.sampled_from([True, True, False])):
            # steer most bodies past the look-ups so the handlers run to the end
            if "routing_key" in body:
                body["routing_key"] = api.names.key
            if creating:
                body["service"] = api.names.service
        token = data.draw(st.sampled_from(tokens))
        headers = {"Authorization": f"Bearer {token}"}
        kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=headers)
        try:
            response = _send(api, loop, kwargs)
        except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError):
            return  # a request no HTTP client can send (e.g. a header with a newline)
        sent += 1
        case.validate_response(response, checks=CHECKS, headers=kwargs["headers"])

    try:
        run()
    except Unsatisfiable:
        pass  # e.g. no negative case exists for an operation without inputs
    return sent


def _fuzz(api: ApiStack, loop: asyncio.AbstractEventLoop, numbers: list[str]) -> int:
    schema = schemathesis.openapi.from_dict(api.app.openapi())
    deadline = time.monotonic() + BUDGET_SECONDS
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        targets = list(numbers)
        if "{number}" in operation.path:
            # new incidents per operation, so each action meets some that it may act on
            targets += [
                asyncio.run_coroutine_threadsafe(create_incident(api, "fuzz"), loop).result(30)
                for _ in range(2)
            ]
        for mode in EXAMPLES:
            sent += _fuzz_operation(api, loop, operation, mode, targets, deadline)
    return sent


async def test_openapi_fuzz_no_5xx_and_every_response_matches_the_schema(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    options = ApiOptions(rate_limit=1_000_000)
    async with api_stack(temporal_client, database_url, task_queue, options=options) as api:
        numbers = [await create_incident(api, title) for title in ("fuzz one", "fuzz two")]
        started = time.monotonic()
        sent = await asyncio.to_thread(_fuzz, api, asyncio.get_running_loop(), numbers)
        assert sent > 150  # the run really exercised the API
        # bounded by BUDGET_SECONDS; generous margin for a loaded 2-core machine
        assert time.monotonic() - started < BUDGET_SECONDS + 60
