"""Waiting for a condition or a deadline, in the same order on every Python.

``workflow.wait_condition(fn, timeout=…)`` awaits ``asyncio.wait_for``, which Python 3.12
rewrote: 3.11 wakes the waiting coroutine through an extra waiter future, 3.12 and later
await the condition directly, one event-loop turn earlier. When another coroutine of the
workflow (a page, a ticket write) schedules a command in the same activation, the commands
come out in a different order, and a history recorded on 3.11 fails replay on 3.12
("Timer machine does not handle this event"). A timer task beside a condition without a
timeout involves no ``wait_for`` timing, so it wakes in the same turn on 3.11, 3.12 and 3.13.

Workflows switch to it behind ``workflow.patched(INVARIANT_WAITS)``: incidents started
before keep the old waits, and a worker must run the Python they were started on
(docs/deploy.md, "Upgrading Python").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

#: the patch id under which workflows wait with :func:`wait_until`
INVARIANT_WAITS = "python-invariant-waits"


async def wait_until(fn: Callable[[], bool], seconds: float | timedelta | None) -> None:
    """Return once ``fn()`` is true or ``seconds`` (a durable timer) have passed.

    Unlike ``wait_condition`` it never raises ``TimeoutError``: callers re-read their state.
    """
    if seconds is None:
        await workflow.wait_condition(fn)
        return
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    timer = asyncio.create_task(asyncio.sleep(seconds))
    try:
        await workflow.wait_condition(lambda: fn() or timer.done())
    finally:
        if not timer.done():
            timer.cancel()


async def wait_or_time_out(
    fn: Callable[[], bool],
    seconds: float | timedelta | None,
    *,
    patched: Callable[[str], bool] = workflow.patched,
) -> None:
    """``workflow.wait_condition(fn, timeout=seconds)``, or :func:`wait_until` once the
    workflow has taken the :data:`INVARIANT_WAITS` patch (asked through ``patched``: a
    workflow that bundles its patches passes its own). Raises ``TimeoutError`` on the old
    path only, as before; callers treat both the same way."""
    if patched(INVARIANT_WAITS):
        await wait_until(fn, seconds)
    else:
        await workflow.wait_condition(fn, timeout=seconds)
