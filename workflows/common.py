"""What the incident and the review workflows do the same way: retry policies, notifications
sent in the background, and the wait for the next due instant.

Both keep their clocks as absolute instants and sleep until the earliest one or until
something changes; both send notifications without waiting on them, so an incident never
waits on a mail server to advance, and turn a failed delivery into ``notification_failed``
events (each workflow records them its own way).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from schemas.activity_io import NOTIFY, NotifyInput, NotifyResult
    from schemas.incident import IncidentSnapshot, TimelineEvent
    from schemas.policy import EscalationTarget
    from workflows.waiting import wait_or_time_out

#: the incident's ticket writes: retried until PostgreSQL takes them
TICKET_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
)
#: the review's writes (timeline, review row, action items): retried until they succeed,
#: starting sooner because the review's Updates wait on them
STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=0.5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
)
#: patch: the ``notify`` activity heartbeats and is given ``NOTIFY_HEARTBEAT_TIMEOUT``, so a
#: page in flight on a worker that dies is retried by another within seconds; before it,
#: only the 60 s start-to-close timeout noticed
NOTIFY_HEARTBEATS = "notify-heartbeats"
#: how long the server waits for a ``notify`` heartbeat before it retries the page elsewhere
#: (the activity beats every fifth of it, and the worker sends a beat at most this often:
#: ``HEARTBEAT_THROTTLE``, so a busy worker keeps a 4 s margin rather than the SDK's 20 %)
NOTIFY_HEARTBEAT_TIMEOUT = timedelta(seconds=5)
HEARTBEAT_THROTTLE = timedelta(seconds=1)

#: notifications and invites: a bounded budget (about 10 minutes), then a
#: ``notification_failed`` event says who was not reached
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=12,
)


async def notify(
    incident: IncidentSnapshot, event: TimelineEvent, targets: list[EscalationTarget]
) -> list[dict[str, Any]]:
    """Run the ``notify`` activity; the details of one ``notification_failed`` event per
    failure (none when everyone was reached)."""
    failures, _ = await notify_posting(incident, event, targets)
    return failures


async def notify_posting(
    incident: IncidentSnapshot,
    event: TimelineEvent,
    targets: list[EscalationTarget],
    *,
    page: bool = False,
    patched: Callable[[str], bool] = workflow.patched,
) -> tuple[list[dict[str, Any]], NotifyResult]:
    """:func:`notify`, and what the activity answered: the users reached, the pages the Slack
    bot posted (the incident keeps them current). ``patched`` answers for the workflow's
    patches (one that bundles them passes its own)."""
    try:
        result = await workflow.execute_activity(
            NOTIFY,
            NotifyInput(incident=incident, event=event, targets=targets, page=page),
            result_type=NotifyResult,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=(NOTIFY_HEARTBEAT_TIMEOUT if patched(NOTIFY_HEARTBEATS) else None),
            retry_policy=SEND_RETRY,
        )
    except ActivityError as err:
        cause = str(err.cause) if err.cause is not None else str(err)
        failed = {"event_seq": event.seq, "targets": [str(t) for t in targets], "reason": cause}
        return [failed], NotifyResult()
    failures = [{"event_seq": event.seq, **failure.model_dump()} for failure in result.failed]
    return failures, result


class Background:
    """Tasks a workflow started without awaiting them (notifications); it waits for them
    before it ends, since an activity still running when the run ends loses its result."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def __bool__(self) -> bool:
        """Whether any task is still running."""
        return bool(self._tasks)


async def wait_until_due(
    due: datetime | None,
    woken: Callable[[], bool],
    *,
    patched: Callable[[str], bool] = workflow.patched,
) -> None:
    """Sleep until ``due`` (``None``: no clock is running) or until ``woken()``; return at
    once when ``due`` has passed. Waits through ``wait_or_time_out`` (the same on every
    Python, see ``workflows.waiting``)."""
    timeout = None if due is None else max(0.0, (due - workflow.now()).total_seconds())
    if timeout is None or timeout > 0:
        try:
            await wait_or_time_out(woken, timeout, patched=patched)
        except TimeoutError:
            pass
