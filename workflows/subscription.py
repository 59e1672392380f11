"""StatusSubscriptionWorkflow: the confirmation mail of a status-page subscription.

``POST /status/subscribe`` starts it (``status-subscription:<hash of the address>``); the API
never sends mail itself, so the mail is durable (retried while the SMTP server is down) and
the API answers at once, the same way whether or not the address is already subscribed. The
activity records the subscriber and sends at most one confirmation per address per cooldown,
so the form cannot be used to flood someone's inbox.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.activity_io import SEND_SUBSCRIPTION_CONFIRMATION, SubscriptionRequest
    from workflows.common import SEND_RETRY


@workflow.defn
class StatusSubscriptionWorkflow:
    @workflow.run
    async def run(self, request: SubscriptionRequest) -> bool:
        """Whether a confirmation mail went out (``False``: confirmed already, or one was
        sent moments ago)."""
        sent: bool = await workflow.execute_activity(
            SEND_SUBSCRIPTION_CONFIRMATION,
            request,
            result_type=bool,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=SEND_RETRY,
        )
        return sent
