"""Hostile requests on every endpoint: oversized bodies (declared and streamed), deep nesting,
invalid UTF-8, wrong content types, hostile paths and query strings. Each gets a clear 4xx,
never a 500, and the process's memory stays flat while thousands of them arrive.

``test_api_errors.py`` pins the exact status and error body for two endpoints; this module
sweeps every POST operation of the OpenAPI document (each action route and both
integrations) and measures the resident set size.
"""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psutil
from temporalio.client import Client

from starter.api.context import ApiOptions
from tests.support_api import api_stack
from tests.support_state import started_on

MB = 1024 * 1024
BODIES: list[tuple[str, bytes, str]] = [
    ("deep nesting", b'{"details": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "application/json"),
    ("invalid UTF-8", b'{"title": "\xc3\x28\xa0\xa1"}', "application/json"),
    ("overlong UTF-8", b'{"title": "\xc0\xaf"}', "application/json"),
    ("truncated", b'{"title": "x', "application/json"),
    ("wide array", b"[" + b"0," * 200_000 + b"0]", "application/json"),
    ("text/plain", b'{"title": "x"}', "text/plain"),
    ("xml", b"<incident><title>x</title></incident>", "application/xml"),
    (
        "multipart",
        b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--",
        "multipart/form-data; boundary=b",
    ),
    ("no content type", b'{"title": "x"}', ""),
    ("utf-16 JSON", '{"title": "x"}'.encode("utf-16"), "application/json"),
]
HOSTILE_GETS = [
    "/api/v1/incidents/INC-1%00",
    "/api/v1/incidents/%ff%fe",
    "/api/v1/incidents/" + "9" * 5000,
    "/api/v1/incidents?limit=1e999",
    "/api/v1/incidents?since=%ff",
    "/api/v1/incidents?cursor=" + "A" * 600,
    "/api/v1/incidents?cursor=%00%ff",
    "/api/v1/incidents?status=" + "&status=".join(["triggered"] * 500),
    "/api/v1/reports/summary?since=0000-00-00",
]


def post_paths(openapi: dict[str, Any]) -> list[str]:
    """Every POST operation, with its path parameters filled in."""
    paths = []
    for path, operations in openapi["paths"].items():
        if "post" in operations:
            paths.append(path.replace("{number}", "INC-1").replace("{integration_key}", "k"))
    return sorted(paths)


def oversized(service: str) -> bytes:
    """5 MB that would open an incident on the create route but for its size: a valid body
    padded with whitespace (JSON allows it between tokens), so only the limit refuses it."""
    valid = json.dumps({"title": "x", "service": service, "dedup_key": "oversized"}).encode()
    return valid[:-1] + b" " * (5 * MB) + valid[-1:]


def requests_for(
    paths: list[str], token: str, big: bytes
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    auth = {"Authorization": f"Bearer {token}"}
    for path in paths:
        json_headers = {**auth, "Content-Type": "application/json"}
        yield "declared oversize", path, {"content": big, "headers": json_headers}
        yield "streamed oversize", path, {"content": _chunks(big), "headers": json_headers}
        for case, body, content_type in BODIES:
            headers = {**auth, **({"Content-Type": content_type} if content_type else {})}
            yield case, path, {"content": body, "headers": headers}


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 256 * 1024):
        yield body[start : start + 256 * 1024]


async def _sweep(http: httpx.AsyncClient, paths: list[str], token: str, big: bytes) -> list[str]:
    """Send every hostile request once; return the ones not answered with a clear 4xx."""
    wrong: list[str] = []
    for case, path, kwargs in requests_for(paths, token, big):
        response = await http.post(path, **kwargs)
        if not 400 <= response.status_code < 500 or not response.content:
            wrong.append(f"{case} {path}: {response.status_code} {response.text[:120]}")
    auth = {"Authorization": f"Bearer {token}"}
    for path in HOSTILE_GETS:
        response = await http.get(path, headers=auth)
        if response.status_code >= 500:
            wrong.append(f"GET {path[:60]}: {response.status_code} {response.text[:120]}")
    return wrong


async def test_every_post_refuses_hostile_bodies_with_a_4xx_and_memory_stays_flat(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    options = ApiOptions(rate_limit=1_000_000)
    async with api_stack(
        temporal_client, database_url, task_queue, options=options, start_worker=False
    ) as api:
        paths = post_paths(api.app.openapi())
        assert len(paths) >= 15  # create, every action, both integrations
        token = api.names.tokens["admin"]
        big = oversized(api.names.service)
        process = psutil.Process()

        assert await _sweep(api.http, paths, token, big) == []  # warm-up round, checked too
        gc.collect()
        baseline = process.memory_info().rss
        sent = 0
        for _ in range(6):
            assert await _sweep(api.http, paths, token, big) == []
            sent += len(paths) * (len(BODIES) + 2)
        gc.collect()
        grown = process.memory_info().rss - baseline
        assert sent > 1000
        # refused means refused: no request, hostile body or not, started an incident workflow
        assert await started_on(temporal_client, task_queue) == []
        # every round offered two 5 MB bodies per endpoint: hundreds of MB went by
        assert grown < 40 * MB, f"RSS grew {grown / MB:.1f} MB over {sent} hostile requests"
