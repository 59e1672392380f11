"""The benchmark's API process: ``create_app`` under uvicorn on loopback, in a process of its
own (as in production), with the rate limit lifted: the benchmark is one credential sending
thousands of requests a minute, which the default limit (120/min) exists to refuse.

Run as ``python -m bench.api_proc`` by ``bench.harness``; ``BENCH_API_PORT`` is the port,
``BENCH_POLICY`` the policy JSON; Temporal and PostgreSQL come from the usual settings.
``BENCH_PROFILE=<file>`` profiles it with pyinstrument.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import uvicorn

from bench.profiling import profiled
from schemas.policy import Policy
from schemas.settings import Settings
from starter.api.app import create_app
from starter.api.context import ApiOptions
from starter.api.server import QuietServer

UNLIMITED = 10**9


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    settings = Settings()
    policy = Policy.model_validate_json(Path(os.environ["BENCH_POLICY"]).read_text())
    app = create_app(settings, policy, options=ApiOptions(rate_limit=UNLIMITED))
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=int(os.environ["BENCH_API_PORT"]),
        log_level="warning",
        access_log=False,
        backlog=1024,
    )
    # QuietServer: uvicorn's own handlers re-raise SIGTERM after shutting down, which would
    # end the process before a profile is written
    server = QuietServer(config)
    with profiled():
        asyncio.run(server.serve_until_signal())


if __name__ == "__main__":
    main()
