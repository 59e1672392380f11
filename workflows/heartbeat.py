"""HeartbeatWorkflow: one long-running workflow per heartbeat (``heartbeat:<name>``), a dead
man's switch on a durable timer.

Every ping (``POST /api/v1/heartbeats/{name}``, or Alertmanager's Watchdog) arrives by
signal-with-start, so the first ping starts the workflow and later ones restart its clock.
When ``interval + grace`` pass without a ping, it opens an incident: it starts an
``IncidentWorkflow`` as an abandoned child with the alert the API classified, the same start
input ``IncidentClient.trigger`` gives (the incident's rules, numbering, ticket and pages are
the incident workflow's, in one place). The next ping clears that incident's alert
(``alert_cleared``, as a resolved Alertmanager alert does), which resolves it where the
service auto-resolves. Each miss opens its own incident (dedup key
``heartbeat:<name>:<missed at>``), so an outage never lands on a resolved incident still in
its reopen window.

Pings are frequent, so a run continues as new after ``pings_per_run`` pings or when the server
suggests it, carrying :class:`HeartbeatState` whole.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import FailureError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from schemas import search_attributes as sa
    from schemas.actions import AlertClear
    from schemas.actors import INCIDENTFLOW
    from schemas.classification import priority_for, severity_for
    from schemas.enums import Status
    from schemas.heartbeat import (
        HeartbeatPing,
        HeartbeatStart,
        HeartbeatState,
        missed_dedup_key,
    )
    from schemas.incident import IncidentStart
    from schemas.workflow_ids import incident_workflow_id
    from workflows.incident import IncidentWorkflow
    from workflows.waiting import wait_or_time_out


@workflow.defn
class HeartbeatWorkflow:
    @workflow.init
    def __init__(self, start: HeartbeatStart) -> None:
        self.s = start.carried or HeartbeatState(
            name=start.config.heartbeat.name, config=start.config, last_ping=workflow.now()
        )
        self.pings_per_run = start.pings_per_run
        #: pings taken by this run (the history grows with them)
        self._run_pings = 0

    @workflow.run
    async def run(self, start: HeartbeatStart) -> None:
        while not self._should_continue_as_new():
            seen = self.s.pings
            if self.s.incident_workflow_id is None:
                due = self.s.last_ping + self.s.config.heartbeat.deadline
                await self._wait(self._pinged_since(seen), due - workflow.now())
                if self.s.pings == seen and workflow.now() >= due:
                    await self._open(due)
            else:
                # a ping after the miss, even one that came while the incident was opening
                missed_at = self.s.missed_at
                assert missed_at is not None
                await self._wait(self._pinged_after(missed_at), None)
                if self._pinged_after(missed_at)():
                    await self._clear()
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            HeartbeatStart(config=self.s.config, carried=self.s, pings_per_run=self.pings_per_run)
        )

    @workflow.signal
    def ping(self, ping: HeartbeatPing) -> None:
        self.s.config = ping.config
        self.s.last_ping = workflow.now()
        self.s.pings += 1
        self._run_pings += 1

    @workflow.query
    def state(self) -> HeartbeatState:
        return self.s

    def _pinged_since(self, seen: int) -> Callable[[], bool]:
        return lambda: self.s.pings != seen

    def _pinged_after(self, instant: datetime) -> Callable[[], bool]:
        return lambda: self.s.last_ping > instant

    async def _wait(self, woken: Callable[[], bool], within: timedelta | None) -> None:
        """Until ``woken()``, ``within`` has passed, or it is time to continue as new (the
        same waits on every Python: ``workflows.waiting``)."""
        seconds = None if within is None else max(0.0, within.total_seconds())
        if seconds == 0:
            return
        try:
            await wait_or_time_out(lambda: woken() or self._should_continue_as_new(), seconds)
        except TimeoutError:
            pass

    def _should_continue_as_new(self) -> bool:
        return (
            self._run_pings >= self.pings_per_run or workflow.info().is_continue_as_new_suggested()
        )

    async def _open(self, missed_at: datetime) -> None:
        """Open the incident of this miss as an abandoned child: it outlives this run."""
        config = self.s.config
        dedup_key = missed_dedup_key(self.s.name, missed_at)
        alert = config.alert.model_copy(
            update={
                "alert_id": str(workflow.uuid4()),
                "dedup_key": dedup_key,
                "occurred_at": missed_at,
                "actor": INCIDENTFLOW,
                "details": {
                    **config.alert.details,
                    "heartbeat": self.s.name,
                    "last_ping": self.s.last_ping.isoformat(),
                    "missed_at": missed_at.isoformat(),
                },
            }
        )
        workflow_id = incident_workflow_id(config.policy.service, dedup_key)
        priority = priority_for(alert.impact, alert.urgency)
        try:
            await workflow.start_child_workflow(
                IncidentWorkflow.run,
                IncidentStart(alert=alert, policy=config.policy),
                id=workflow_id,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.INCIDENT_STATUS, Status.TRIGGERED.value),
                        SearchAttributePair(
                            sa.INCIDENT_SEVERITY, (alert.severity or severity_for(priority)).value
                        ),
                        SearchAttributePair(sa.INCIDENT_SERVICE, config.policy.service),
                        SearchAttributePair(sa.INCIDENT_PRIORITY, priority.value),
                    ]
                ),
            )
        except WorkflowAlreadyStartedError:
            pass  # this miss's incident exists already (a reset replayed the start)
        self.s.missed_at = missed_at
        self.s.incident_workflow_id = workflow_id
        self.s.incidents += 1

    async def _clear(self) -> None:
        """Pings resumed: clear the incident's alert (it resolves where the service says)."""
        assert self.s.incident_workflow_id is not None
        handle = workflow.get_external_workflow_handle(self.s.incident_workflow_id)
        try:
            await handle.signal(
                IncidentWorkflow.alert_cleared, AlertClear(actor=INCIDENTFLOW, at=workflow.now())
            )
        except FailureError:
            pass  # the incident has ended already (closed or cancelled by a responder)
        self.s.incident_workflow_id = None
        self.s.missed_at = None
