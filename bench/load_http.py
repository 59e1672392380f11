"""The load generator's HTTP client: aiohttp, whose C parser costs a fraction of httpx's CPU.

The benchmarks share two cores between the Temporal server, the worker, the API and the load
generator, and their baselines call Temporal through its Rust client. A load generator that
spends more CPU per request than the API it measures takes that CPU from the server under
test, so the HTTP figures read low against baselines that pay no such cost. Measured on
this machine (the ingest scenario, 1,000 alerts): httpx 4.7 ms of CPU per request, aiohttp
1.2 ms, the Temporal client of the baselines 1.3-1.6 ms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Answer:
    """What a benchmark needs of a response (the attribute names httpx uses)."""

    status_code: int
    text: str


class LoadClient:
    """``connections`` kept-alive connections to ``base_url``; ``post`` returns an
    :class:`Answer` with the body read."""

    def __init__(self, base_url: str, connections: int, *, timeout: float = 120) -> None:
        self.base_url = base_url
        self.connections = connections
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LoadClient:
        self._session = aiohttp.ClientSession(
            base_url=self.base_url,
            connector=aiohttp.TCPConnector(limit=self.connections, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            json_serialize=json.dumps,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self, path: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> Answer:
        assert self._session is not None, "use LoadClient as an async context manager"
        async with self._session.post(path, json=json, headers=headers) as response:
            return Answer(response.status, await response.text())
