"""ReviewClient: the Python facade over post-incident review workflows (``review:<number>``).

Live state and changes go through the workflow (query ``state``; Updates ``reschedule``,
``complete``, ``waive``, ``add_attendees``, ``add_action_item``, ``update_action_item``);
the stored postmortem and the action items are read from PostgreSQL
(``starter.review_queries``), so they stay readable after the workflow ends.

``waive`` is for admins only. The workflow cannot see API token scopes, so the caller
states ``admin=True`` after checking them (the HTTP API: the token's ``admin`` scope); the
workflow rejects a waive without it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from schemas.failures import FailureType
from schemas.review import (
    ActionItem,
    ActionItemChange,
    ActionItemInput,
    AddActionItemInput,
    AddAttendeesInput,
    CompleteReviewInput,
    RescheduleInput,
    ReviewRecord,
    ReviewState,
    WaiveInput,
    review_workflow_id,
)
from starter import review_queries
from starter.errors import (
    ActionRejected,
    IncidentError,
    IncidentNotFound,
    InvalidAction,
    ServiceUnavailable,
)
from workflows.review import PostIncidentReviewWorkflow


class NotAllowed(IncidentError):
    """The caller lacks the right to do this (HTTP 403): e.g. waiving without admin."""


class ReviewFinished(IncidentError):
    """The review workflow has finished, so it takes no more Updates (its last state is
    still readable)."""


#: ApplicationError types the review workflow raises, and what each means to a caller
_REJECTIONS: dict[str, type[IncidentError]] = {
    FailureType.FORBIDDEN: NotAllowed,
    FailureType.REVIEW_CLOSED: ActionRejected,
    FailureType.ACTION_ITEM_CLOSED: ActionRejected,
    FailureType.ACTION_ITEM_EXISTS: ActionRejected,
    FailureType.ACTION_ITEM_NOT_FOUND: IncidentNotFound,
}


class ReviewClient:
    def __init__(self, client: Client, *, database_url: str | None = None) -> None:
        self.client = client
        self.database_url = database_url

    def handle(self, number: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(review_workflow_id(number))

    # ------------------------------------------------------------------ workflow
    async def get(self, number: str) -> ReviewState:
        """Live state of the review (also after it finished: the last state)."""
        try:
            state: ReviewState = await self.handle(number).query(PostIncidentReviewWorkflow.state)
        except RPCError as err:
            raise _rpc_error(err, number) from err
        return state

    async def reschedule(
        self, number: str, at: datetime, actor: str, reason: str | None = None
    ) -> ReviewState:
        return await self._update(
            number,
            PostIncidentReviewWorkflow.reschedule,
            RescheduleInput(actor=actor, at=at, reason=reason),
        )

    async def complete(self, number: str, data: CompleteReviewInput) -> ReviewState:
        return await self._update(number, PostIncidentReviewWorkflow.complete, data)

    async def waive(self, number: str, actor: str, reason: str, *, admin: bool) -> ReviewState:
        return await self._update(
            number,
            PostIncidentReviewWorkflow.waive,
            WaiveInput(actor=actor, reason=reason, admin=admin),
        )

    async def add_attendees(self, number: str, actor: str, people: list[str]) -> ReviewState:
        return await self._update(
            number,
            PostIncidentReviewWorkflow.add_attendees,
            AddAttendeesInput(actor=actor, people=people),
        )

    async def add_action_item(self, number: str, actor: str, item: ActionItemInput) -> ActionItem:
        """A new tracked action item (its id comes from the ``action_items`` row)."""
        result: ActionItem = await self._update(
            number,
            PostIncidentReviewWorkflow.add_action_item,
            AddActionItemInput(actor=actor, item=item),
            result_type=ActionItem,
        )
        return result

    async def update_action_item(self, number: str, change: ActionItemChange) -> ActionItem:
        """Done, cancelled, reopened, reassigned or re-dated, through the workflow, which
        stops (or re-plans) the item's reminder. Raises :class:`ReviewFinished` when the
        workflow no longer runs."""
        result: ActionItem = await self._update(
            number,
            PostIncidentReviewWorkflow.update_action_item,
            change,
            result_type=ActionItem,
        )
        return result

    async def running(self, number: str) -> bool | None:
        """Whether the review workflow runs; ``None`` when there is none."""
        try:
            description = await self.handle(number).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise _rpc_error(err, number) from err
        return description.status == WorkflowExecutionStatus.RUNNING

    async def history(self, number: str) -> WorkflowHistory:
        return await self.handle(number).fetch_history()

    async def _update(
        self, number: str, update: Any, arg: Any, *, result_type: type = ReviewState
    ) -> Any:
        try:
            return await self.handle(number).execute_update(update, arg, result_type=result_type)
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            kind = cause.type if isinstance(cause, ApplicationError) else None
            raise _REJECTIONS.get(kind or "", InvalidAction)(message) from err
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND and await self.running(number) is False:
                finished = self.client.get_workflow_handle(
                    review_workflow_id(number), result_type=ReviewState
                )
                final = await finished.result()
                raise ReviewFinished(
                    f"the review of {number} is {final.status.value}: its workflow has finished"
                    " and takes no more changes"
                ) from err
            raise _rpc_error(err, number) from err

    # ------------------------------------------------------------------ PostgreSQL
    async def record(self, number: str) -> ReviewRecord:
        """The ``reviews`` row: stored status, schedule and postmortem document."""
        row = await review_queries.fetch_review(self._url(), number)
        if row is None:
            raise IncidentNotFound(f"no review for {number}")
        return row

    async def postmortem(self, number: str) -> str:
        """The postmortem (markdown) as last rendered: a draft until the review completes."""
        row = await self.record(number)
        return row.document or ""

    async def open_action_items(
        self, *, service: str | None = None, owner: str | None = None
    ) -> list[ActionItem]:
        return await review_queries.open_action_items(self._url(), service=service, owner=owner)

    def _url(self) -> str:
        if not self.database_url:
            raise ServiceUnavailable("ReviewClient needs DATABASE_URL to read stored reviews")
        return self.database_url


def _rpc_error(err: RPCError, number: str) -> Exception:
    if err.status == RPCStatusCode.NOT_FOUND:
        return IncidentNotFound(f"no review for {number}")
    if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return ServiceUnavailable(f"Temporal is unreachable: {err.message}")
    return err
