"""IncidentClient: the one Python facade over incident workflows.

The HTTP API, the CLI and the dashboard all go through this class, so the rules about how
an alert becomes a workflow (ID from service + dedup key, update-with-start with
USE_EXISTING) and how an incident number finds its workflow live in one place.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    WorkflowIDConflictPolicy,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from schemas import search_attributes as sa
from schemas.actions import (
    ACTION_SPECS,
    AcknowledgeInput,
    ActionInput,
    AlertClear,
    AlertRepeat,
    LinkInput,
    ResolveInput,
    StatusUpdateInput,
    UnlinkInput,
)
from schemas.enums import INVERSE_LINK, Action, Severity, Status
from schemas.failures import FailureType
from schemas.incident import (
    Alert,
    AlertSignal,
    IncidentPolicy,
    IncidentRef,
    IncidentSnapshot,
    IncidentStart,
)
from schemas.lifecycle import handed_over, rejection_message, review_pending_message
from schemas.policy import Policy, Service
from schemas.policy_holder import PolicyHolder
from schemas.settings import TASK_QUEUE
from schemas.workflow_ids import incident_workflow_id
from starter.errors import (
    ActionRejected,
    IncidentNotFound,
    InvalidAction,
    ServiceUnavailable,
    UnknownService,
)
from workflows.incident import IncidentWorkflow

#: seconds to wait for a just-started incident's number (its first activity)
log = logging.getLogger("incidentflow.client")

NUMBER_WAIT = 10.0
#: seconds a link waits for the other incident to take its inverse: an open incident whose
#: worker is gone (stopped, or polling another task queue) admits the Update and never
#: answers, and the link must not wait for it; the server keeps the admitted Update for
#: the worker's return, and the ticket store records both sides from this incident's event
INVERSE_WAIT = 1.0


class IncidentListing(BaseModel):
    """One row of a visibility listing: what search attributes know without a query."""

    number: str
    workflow_id: str
    run_id: str
    status: Status
    severity: Severity
    service: str
    priority: str
    started_at: datetime | None = None


#: finds the workflow id of an incident by its number without asking visibility (the API
#: reads the ticket store); None when it does not know, and then visibility is asked
WorkflowLocator = Callable[[str], Awaitable[str | None]]


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class IncidentClient:
    def __init__(
        self,
        client: Client,
        policy: Policy | PolicyHolder,
        *,
        task_queue: str = TASK_QUEUE,
        locate: WorkflowLocator | None = None,
    ) -> None:
        self.client = client
        self.policies = PolicyHolder.of(policy)
        self.task_queue = task_queue
        self._workflow_ids: dict[str, str] = {}
        self._locate = locate

    @property
    def policy(self) -> Policy:
        """The current policy: each new incident starts with a snapshot of it."""
        return self.policies.current

    # ------------------------------------------------------------------ ingestion
    def incident_policy(self, service: Service) -> IncidentPolicy:
        return IncidentPolicy.of(self.policy, service)

    def _service(self, name: str) -> Service:
        service = self.policy.service(name)
        if service is None:
            known = ", ".join(s.name for s in self.policy.services)
            raise UnknownService(f"unknown service {name!r}; known services: {known}")
        return service

    def _identified(self, alert: Alert) -> tuple[Alert, IncidentStart, dict[str, Any]]:
        """``alert`` with its id (kept when the caller gave one: a resend is recognised) and
        dedup key, the start input of a new incident for it, and how to start its workflow
        (one per key: ``USE_EXISTING``)."""
        service = self._service(alert.service)
        alert = alert.model_copy(
            update={
                "alert_id": alert.alert_id or uuid.uuid4().hex,
                "dedup_key": alert.dedup_key or uuid.uuid4().hex,
            }
        )
        assert alert.dedup_key is not None
        start = IncidentStart(alert=alert, policy=self.incident_policy(service))
        options: dict[str, Any] = {
            "id": incident_workflow_id(service.name, alert.dedup_key),
            "task_queue": self.task_queue,
            "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
            "search_attributes": sa.at_start(alert),
        }
        return alert, start, options

    async def enqueue(self, alert: Alert) -> str:
        """The fast path: hand ``alert`` to its incident by signal-with-start and return its
        dedup key once Temporal has durably accepted it, without waiting for the number.

        A new key starts an incident; an open one counts it (a repeat, or a reopen); a run
        that is closing or continuing as new queues it and carries it to its next run
        (``IncidentWorkflow.alert_received``), so it is never refused, lost or counted twice.
        """
        alert, start, options = self._identified(alert)
        try:
            await self.client.start_workflow(
                IncidentWorkflow.run,
                start,
                **options,
                start_signal=IncidentWorkflow.alert_received.__name__,
                start_signal_args=[AlertSignal(alert=alert, policy=start.policy)],
            )
        except RPCError as err:
            raise _rpc_error(err) from err
        assert alert.dedup_key is not None
        return alert.dedup_key

    async def trigger(self, alert: Alert) -> IncidentRef:
        """Open an incident for ``alert``, or count it against the open one with its key."""
        alert, start, options = self._identified(alert)
        workflow_id = options["id"]
        # A run that is closing rejects new alerts; retry until its successor can start
        # (a run drains its notifications for at most a minute before it ends).
        for attempt in range(400):
            operation = WithStartWorkflowOperation(IncidentWorkflow.run, start, **options)
            try:
                ref: IncidentRef = await self.client.execute_update_with_start_workflow(
                    IncidentWorkflow.ingest_alert, alert, start_workflow_operation=operation
                )
            except WorkflowUpdateFailedError as err:
                if _failure_type(err) == FailureType.INCIDENT_CLOSED:
                    await asyncio.sleep(_retry_delay(attempt))
                    continue
                raise InvalidAction(_failure_message(err)) from err
            except WorkflowUpdateRPCTimeoutOrCancelledError as err:
                raise ServiceUnavailable(f"no answer from incident {workflow_id} in time") from err
            except RPCError as err:
                if _not_admitted(err):
                    await asyncio.sleep(_retry_delay(attempt))
                    continue
                raise _rpc_error(err) from err
            self._workflow_ids[ref.number] = ref.workflow_id
            return ref
        raise ServiceUnavailable(f"incident {workflow_id} kept closing; try again")

    async def repeat(self, service: str, dedup_key: str, repeat: AlertRepeat | None = None) -> bool:
        """Fire-and-forget repeat of an alert; False when no incident is open for the key."""
        return await self._signal_key(
            service, dedup_key, IncidentWorkflow.alert_repeated, repeat or AlertRepeat()
        )

    async def clear(self, service: str, dedup_key: str, clear: AlertClear | None = None) -> bool:
        """The monitoring system says the alert is gone; False when nothing was open."""
        return await self._signal_key(
            service, dedup_key, IncidentWorkflow.alert_cleared, clear or AlertClear()
        )

    async def _signal_key(self, service: str, dedup_key: str, signal: Any, arg: Any) -> bool:
        self._service(service)
        handle = self.client.get_workflow_handle(incident_workflow_id(service, dedup_key))
        try:
            await handle.signal(signal, arg)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            raise _rpc_error(err) from err
        return True

    async def open_incident_for_key(self, service: str, dedup_key: str) -> str | None:
        """Number of the incident open for an alert key, if any (PagerDuty ack/resolve by key).

        An incident started a moment ago by the fast path may not have its number yet: this
        waits for it (a few workflow tasks), so an acknowledge right after a trigger acts.
        """
        self._service(service)
        handle = self.client.get_workflow_handle(incident_workflow_id(service, dedup_key))
        deadline = asyncio.get_running_loop().time() + NUMBER_WAIT
        try:
            while not (snapshot := await handle.query(IncidentWorkflow.state)).number:
                if asyncio.get_running_loop().time() > deadline:
                    raise ServiceUnavailable(f"incident {handle.id} has no number yet; try again")
                await asyncio.sleep(0.05)
            description = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise _rpc_error(err) from err
        if description.status != WorkflowExecutionStatus.RUNNING:
            return None
        if snapshot.status in (Status.RESOLVED, Status.CLOSED):
            return None
        self._workflow_ids[snapshot.number] = snapshot.workflow_id
        return snapshot.number

    # ------------------------------------------------------------------ actions
    async def act(
        self, number: str, action: Action, data: ActionInput, *, action_id: str | None = None
    ) -> IncidentSnapshot:
        """Run one responder action; raises ActionRejected with the workflow's message.

        ``action_id`` becomes the Update's id: the same id sent again is applied once, by
        the server within a run and by the incident across continue-as-new.

        A link or unlink is sent to the other incident too, as its inverse (``inverse``): an
        other incident whose run has ended keeps its side in PostgreSQL only (the ticket
        store records both sides of every link from either incident's timeline)."""
        if isinstance(data, LinkInput | UnlinkInput) and not data.inverse:
            await self._find(data.other)  # an unknown other incident: IncidentNotFound
            result = await self._act(number, action, data, action_id)
            inverse = data.model_copy(
                update={"kind": INVERSE_LINK[data.kind], "other": number, "inverse": True}
            )
            inverse_id = f"{action_id}:inverse" if action_id else None
            try:
                async with asyncio.timeout(INVERSE_WAIT):
                    await self._act(data.other, action, inverse, inverse_id)
            except (ActionRejected, InvalidAction, IncidentNotFound):
                pass  # ended, or already knows: its side lives in the ticket store
            except (ServiceUnavailable, TimeoutError):
                # this incident holds the link already and the ticket store records both
                # sides; a 503 would invite a retry that this side now refuses as a repeat
                log.warning(
                    "%s did not learn its %s link to %s in time", data.other, inverse.kind, number
                )
            return result
        return await self._act(number, action, data, action_id)

    async def _act(
        self, number: str, action: Action, data: ActionInput, action_id: str | None = None
    ) -> IncidentSnapshot:
        spec = ACTION_SPECS[action]
        update, input_type = spec.update, spec.input_type
        if not isinstance(data, input_type):
            raise InvalidAction(f"{action.value} takes {input_type.__name__}")
        data = data.model_copy(update={"number": number})
        if isinstance(data, StatusUpdateInput) and data.public:
            await self._check_public(number)
        handle = await self._handle(number)
        try:
            result: IncidentSnapshot = await handle.execute_update(
                update, data, id=action_id, result_type=IncidentSnapshot
            )
        except WorkflowUpdateFailedError as err:
            kind = _failure_type(err)
            if kind == FailureType.INCIDENT_NOT_FOUND:
                raise IncidentNotFound(_failure_message(err)) from err
            if kind == FailureType.ILLEGAL_TRANSITION:
                raise ActionRejected(_failure_message(err)) from err
            raise InvalidAction(_failure_message(err)) from err
        except WorkflowUpdateRPCTimeoutOrCancelledError as err:
            raise ServiceUnavailable(f"no answer from {number} in time; try again") from err
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                final = await self.get(number)
                if final.review_workflow_id and handed_over(final.status, final.review_workflow_id):
                    # the run ended by handing over: the review closes the incident
                    message = review_pending_message(number, action, final.review_workflow_id)
                    raise ActionRejected(message) from err
                raise ActionRejected(rejection_message(number, action, final.status)) from err
            raise _rpc_error(err) from err
        return result

    async def acknowledge(
        self, number: str, actor: str, note: str | None = None
    ) -> IncidentSnapshot:
        return await self.act(number, Action.ACKNOWLEDGE, AcknowledgeInput(actor=actor, note=note))

    async def resolve(
        self, number: str, actor: str, resolution: str | None = None
    ) -> IncidentSnapshot:
        return await self.act(
            number, Action.RESOLVE, ResolveInput(actor=actor, resolution=resolution)
        )

    # ------------------------------------------------------------------ reads
    async def get(self, number: str) -> IncidentSnapshot:
        """Full snapshot with timeline: live from the running workflow, else from its last run."""
        execution = await self._find(number)
        handle = self.client.get_workflow_handle(execution.workflow_id, run_id=execution.run_id)
        try:
            return await handle.query(IncidentWorkflow.state)
        except RPCError as err:
            raise _rpc_error(err) from err

    async def list(
        self,
        *,
        status: Status | str | None = None,
        severity: Severity | str | None = None,
        service: str | None = None,
        open_only: bool = False,
        limit: int = 100,
    ) -> list[IncidentListing]:
        """Incidents by visibility query (search attributes), newest first."""
        clauses = ["WorkflowType = 'IncidentWorkflow'", "IncidentNumber IS NOT NULL"]
        clauses.append("ExecutionStatus = 'Running'")
        if status:
            clauses.append(f"IncidentStatus = {_quote(Status(status).value)}")
        if open_only:
            clauses.append("IncidentStatus NOT IN ('resolved', 'closed')")
        if severity:
            clauses.append(f"IncidentSeverity = {_quote(Severity(severity).value)}")
        if service:
            clauses.append(f"IncidentService = {_quote(service)}")
        rows: list[IncidentListing] = []
        try:
            async for wf in self.client.list_workflows(" AND ".join(clauses), limit=limit):
                attrs = wf.typed_search_attributes
                rows.append(
                    IncidentListing(
                        number=attrs.get(sa.INCIDENT_NUMBER) or "",
                        workflow_id=wf.id,
                        run_id=wf.run_id,
                        status=Status(attrs.get(sa.INCIDENT_STATUS) or "triggered"),
                        severity=Severity(attrs.get(sa.INCIDENT_SEVERITY) or "SEV4"),
                        service=attrs.get(sa.INCIDENT_SERVICE) or "",
                        priority=attrs.get(sa.INCIDENT_PRIORITY) or "",
                        started_at=wf.start_time,
                    )
                )
        except RPCError as err:
            raise _rpc_error(err) from err
        return rows

    async def history(self, number: str) -> WorkflowHistory:
        """Event history of the incident's current (or last) run, e.g. for replay checks."""
        execution = await self._find(number)
        handle = self.client.get_workflow_handle(execution.workflow_id, run_id=execution.run_id)
        return await handle.fetch_history()

    # ------------------------------------------------------------------ look-up
    async def _check_public(self, number: str) -> None:
        """A public status update needs a service on the status page (the policy today)."""
        name = (await self._find(number)).service
        service = self.policy.service(name)
        if service is None or not service.public:
            raise InvalidAction(
                f"{number}'s service {name} is not on the public status page (set public: true "
                "and a display_name in the policy); post the update without public"
            )

    def remember(self, number: str, workflow_id: str) -> None:
        """Keep ``number``'s workflow id (a number never moves to another workflow id) when
        the caller read it already, so the next action does not look it up again."""
        self._workflow_ids[number] = workflow_id

    async def _handle(self, number: str) -> WorkflowHandle[Any, Any]:
        """The incident's workflow, for an Update: remembered, else from ``locate`` (an
        indexed read, where a visibility list query costs the server a scan per action on
        an incident this process did not open, as every fast-path incident is), else from
        visibility. A number whose key has a newer incident is refused by that incident."""
        workflow_id = self._workflow_ids.get(number)
        if workflow_id is None and self._locate is not None:
            workflow_id = await self._locate(number)
        if workflow_id is None:
            workflow_id = (await self._find(number)).workflow_id
        self._workflow_ids[number] = workflow_id
        return self.client.get_workflow_handle(workflow_id)

    async def _find(self, number: str, *, wait: float = 2.0) -> IncidentListing:
        """The run that holds ``number``: the running one, else the last completed.

        Visibility is eventually consistent, so a number allocated a moment ago is retried
        briefly before it is reported missing.
        """
        query = f"WorkflowType = 'IncidentWorkflow' AND IncidentNumber = {_quote(number)}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            best = None
            try:
                async for wf in self.client.list_workflows(query, limit=20):
                    if wf.status == WorkflowExecutionStatus.RUNNING:
                        best = wf
                        break
                    rank = _ended_rank(wf)
                    if rank[0] > 0 and (best is None or rank > _ended_rank(best)):
                        best = wf
            except RPCError as err:
                raise _rpc_error(err) from err
            if best is not None:
                return IncidentListing(
                    number=number,
                    workflow_id=best.id,
                    run_id=best.run_id,
                    status=Status(best.typed_search_attributes.get(sa.INCIDENT_STATUS) or "closed"),
                    severity=Severity(
                        best.typed_search_attributes.get(sa.INCIDENT_SEVERITY) or "SEV4"
                    ),
                    service=best.typed_search_attributes.get(sa.INCIDENT_SERVICE) or "",
                    priority=best.typed_search_attributes.get(sa.INCIDENT_PRIORITY) or "",
                    started_at=best.start_time,
                )
            if loop.time() > deadline:
                raise IncidentNotFound(f"no incident {number}")
            await asyncio.sleep(0.1)


def _ended_rank(wf: WorkflowExecution) -> tuple[int, float]:
    """Which ended run holds a closed incident: the completed one, else the newest that
    continued as new (its last run continues as the key's next incident when alerts arrived
    while it was closing); other ends (terminated, failed) hold nothing."""
    status = {
        WorkflowExecutionStatus.COMPLETED: 2,
        WorkflowExecutionStatus.CONTINUED_AS_NEW: 1,
    }.get(wf.status or WorkflowExecutionStatus.TERMINATED, -1)
    return (status, wf.start_time.timestamp() if wf.start_time else 0.0)


def _failure_type(err: WorkflowUpdateFailedError) -> str | None:
    cause = err.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def _failure_message(err: WorkflowUpdateFailedError) -> str:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause) if cause is not None else str(err)


def _retry_delay(attempt: int) -> float:
    """Exponential backoff with full jitter (50 ms doubling, capped at 1 s): many callers
    refused at once (the server's ten Updates in flight per workflow) must not retry in step,
    or each wave is refused again."""
    return random.uniform(0.0, min(0.05 * 2 ** min(attempt, 5), 1.0))


def _not_admitted(err: RPCError) -> bool:
    """The server dropped the update before the workflow accepted it, so nothing was applied
    and sending it again counts it once: aborted because the run continued-as-new or closed
    (UNAVAILABLE), or refused while too many updates were in flight (RESOURCE_EXHAUSTED)."""
    if err.status == RPCStatusCode.UNAVAILABLE:
        return "update was aborted" in err.message
    return err.status == RPCStatusCode.RESOURCE_EXHAUSTED


def _rpc_error(err: RPCError) -> Exception:
    if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return ServiceUnavailable(f"Temporal is unreachable: {err.message}")
    return err
