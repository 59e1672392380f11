"""The API's uvicorn server as incidentflow runs it: its owner, not uvicorn, handles signals.

uvicorn's own handlers re-raise SIGINT/SIGTERM once it has shut down, so ``incidentflow api``
would die of SIGTERM instead of exiting 0, and a process hosting the API beside other parts
(the dev launcher, the tests, the benchmark's API process) would lose its shutdown order.
Production's ``incidentflow api`` runs it, so it lives with the API (``starter``), where the
dev launcher, the tests and the benchmarks import it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

import uvicorn


class QuietServer(uvicorn.Server):
    """A :class:`uvicorn.Server` that installs no signal handlers: set ``should_exit`` to
    stop it (in-flight requests get ``timeout_graceful_shutdown``)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def serve_until_signal(self) -> None:
        """Serve until SIGINT or SIGTERM reaches this process, then shut down gracefully."""
        loop = asyncio.get_running_loop()
        stops = (signal.SIGINT, signal.SIGTERM)
        for sig in stops:
            loop.add_signal_handler(sig, setattr, self, "should_exit", True)
        try:
            await self.serve()
        finally:
            for sig in stops:
                loop.remove_signal_handler(sig)
