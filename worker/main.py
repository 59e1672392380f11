"""The worker process: connects, migrates, registers workflows and activities, drains on stop.

Kept apart from the workflows and activities themselves (PostHog's habit): this module
knows about pools, pollers and shutdown; they know nothing of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.common import MetricMeter, VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import Worker, WorkerDeploymentConfig
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.db import create_pool, migrate
from activities.notifications.activity import NotifyActivities
from activities.notifications.slack_sync import SlackActivities
from activities.reviews.activity import ReviewActivities
from activities.status_page.activity import StatusPageActivities
from activities.tickets import TicketActivities
from schemas.connection import connect_temporal
from schemas.policy import Policy
from schemas.policy_holder import POLICY_INFO_METRIC, PolicyHolder
from schemas.settings import Settings
from worker.telemetry import metrics_runtime
from workflows.common import HEARTBEAT_THROTTLE
from workflows.heartbeat import HeartbeatWorkflow
from workflows.incident import IncidentWorkflow
from workflows.review import PostIncidentReviewWorkflow
from workflows.subscription import StatusSubscriptionWorkflow

log = logging.getLogger("incidentflow.worker")

WORKFLOWS = [
    IncidentWorkflow,
    PostIncidentReviewWorkflow,
    HeartbeatWorkflow,
    StatusSubscriptionWorkflow,
]

#: schemas and pydantic are pure and deterministic: pass them through the sandbox instead of
#: re-importing them for every workflow run
RESTRICTIONS = SandboxRestrictions.default.with_passthrough_modules(
    "schemas", "pydantic", "pydantic_core", "annotated_types"
)
STRICT_SANDBOX = SandboxedWorkflowRunner(restrictions=RESTRICTIONS)
#: What the worker runs: the workflow modules pass through too. Re-executing
#: workflows/incident.py (handler registration behind the sandbox's import proxies) cost
#: ~15 ms of worker CPU for every new incident and every one re-created after leaving the
#: sticky cache, 36 of 85 busy seconds in an escalation run; with it passed through, 2,000
#: escalations spread over 60 s went from p99 1.75-2.75 s to 0.93-1.10 s. The modules hold no
#: mutable state to isolate; what the proxies guarded (no clock, randomness or I/O in
#: workflow code) is checked statically by tests/test_workflow_determinism.py, and the
#: replay test replays every recorded history under STRICT_SANDBOX.
SANDBOX = SandboxedWorkflowRunner(restrictions=RESTRICTIONS.with_passthrough_modules("workflows"))


@dataclass
class WorkerTuning:
    """How much the worker takes on at once; the defaults, and why, are the ``WORKER_*``
    fields of :class:`Settings`."""

    max_cached_workflows: int
    max_concurrent_activities: int
    max_concurrent_workflow_tasks: int
    workflow_task_pollers: int
    activity_task_pollers: int
    graceful_shutdown: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerTuning:
        """The ``WORKER_*`` environment settings (docs/deploy.md lists them)."""
        return cls(
            max_cached_workflows=settings.worker_max_cached_workflows,
            max_concurrent_activities=settings.worker_max_concurrent_activities,
            max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
            workflow_task_pollers=settings.worker_workflow_task_pollers,
            activity_task_pollers=settings.worker_activity_task_pollers,
            graceful_shutdown=timedelta(seconds=settings.worker_shutdown_grace_seconds),
        )


VERSIONING_BEHAVIORS = {
    "auto_upgrade": VersioningBehavior.AUTO_UPGRADE,
    "pinned": VersioningBehavior.PINNED,
}


def deployment_config(settings: Settings) -> WorkerDeploymentConfig | None:
    """Worker Versioning when ``WORKER_BUILD_ID`` is set; ``None`` (unversioned) otherwise.

    A versioned worker only receives tasks once its version is made current (or ramping):
    ``temporal worker deployment set-current-version`` (docs/deploy.md, "Upgrades").
    """
    if not settings.worker_build_id:
        return None
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(
            deployment_name=settings.worker_deployment_name, build_id=settings.worker_build_id
        ),
        use_worker_versioning=True,
        default_versioning_behavior=VERSIONING_BEHAVIORS[settings.worker_versioning_behavior],
    )


def activities_for(
    pool: AsyncConnectionPool,
    policy: Policy | PolicyHolder,
    settings: Settings,
    http: httpx.AsyncClient | None = None,
) -> list[object]:
    tickets = TicketActivities(pool)
    notify = NotifyActivities(pool, policy, settings, http=http)
    reviews = ReviewActivities(pool, policy, settings)
    slack = SlackActivities(notify)
    status_page = StatusPageActivities(pool, policy, settings)
    return [
        tickets.allocate_incident_number,
        tickets.open_incident,
        tickets.record_incident,
        notify.notify,
        slack.sync_slack,
        reviews.record_review,
        reviews.send_review_invite,
        reviews.record_action_items,
        reviews.open_action_items_due,
        reviews.store_action_items,
        reviews.update_action_item,
        reviews.complete_hand_over,
        status_page.send_subscription_confirmation,
        status_page.mail_subscribers,
    ]


def build_worker(
    client: Client,
    *,
    pool: AsyncConnectionPool,
    policy: Policy | PolicyHolder,
    settings: Settings,
    task_queue: str | None = None,
    tuning: WorkerTuning | None = None,
    http: httpx.AsyncClient | None = None,
) -> Worker:
    """The incident worker; ``http`` is the client webhook and Slack deliveries share (made
    on first use when not given)."""
    tuning = tuning or WorkerTuning.from_settings(settings)
    return Worker(
        client,
        task_queue=task_queue or settings.temporal_task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(pool, policy, settings, http),  # type: ignore[arg-type]
        workflow_runner=SANDBOX,
        max_cached_workflows=tuning.max_cached_workflows,
        max_concurrent_activities=tuning.max_concurrent_activities,
        max_concurrent_workflow_tasks=tuning.max_concurrent_workflow_tasks,
        max_concurrent_workflow_task_polls=tuning.workflow_task_pollers,
        max_concurrent_activity_task_polls=tuning.activity_task_pollers,
        graceful_shutdown_timeout=tuning.graceful_shutdown,
        deployment_config=deployment_config(settings),
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )


async def run_worker(
    settings: Settings, policy: Policy | PolicyHolder, stop: asyncio.Event
) -> None:
    """Run until ``stop`` is set, then let in-flight activities finish (graceful shutdown).

    Activities read the policy through one holder, so a reload of ``policy`` (SIGHUP, see
    ``launcher.cli``) reaches the next notification without a restart."""
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set: the worker needs PostgreSQL for tickets")
    await migrate(settings.database_url)
    policy = PolicyHolder.of(policy)
    log.info("worker serving policy %s", policy.hash)
    runtime = metrics_runtime(settings)
    if runtime is not None:
        log.info("worker metrics on http://%s/metrics", settings.worker_metrics_address)
        export_policy_hash(runtime.metric_meter, policy)
    client = await connect_temporal(settings, runtime=runtime)
    pool = await create_pool(
        settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    try:
        async with (
            httpx.AsyncClient(follow_redirects=False) as http,
            build_worker(client, pool=pool, policy=policy, settings=settings, http=http),
        ):
            log.info("worker polling task queue %s", settings.temporal_task_queue)
            if settings.worker_health_file:
                await heartbeat(settings.worker_health_file, stop)
            await stop.wait()
            log.info(
                "worker stopping: draining in-flight activities (grace %ss)",
                settings.worker_shutdown_grace_seconds,
            )
        log.info("worker stopped")
    finally:
        await pool.close()


def export_policy_hash(meter: MetricMeter, holder: PolicyHolder) -> None:
    """``incidentflow_policy_info{hash="…"}``: 1 for the policy in force, 0 for those a
    reload replaced (an SDK gauge cannot drop a series): alert on ``== 1``."""
    gauge = meter.create_gauge(POLICY_INFO_METRIC, "The policy in force (1), by its hash")
    gauge.set(1, {"hash": holder.hash})

    def swapped(old: str, new: str) -> None:
        gauge.set(0, {"hash": old})
        gauge.set(1, {"hash": new})

    holder.on_reload(swapped)


#: how often the health file is touched; a container healthcheck allows a few misses
HEARTBEAT_EVERY = 5.0


async def heartbeat(path: Path, stop: asyncio.Event) -> None:
    """Touch ``path`` every few seconds until ``stop``, then remove it.

    A container healthcheck (docker-compose.yml) reads the file's age: a wedged event loop
    (a blocking call in an activity, say) stops the touches and marks the worker unhealthy.
    """
    try:
        while not stop.is_set():
            await asyncio.to_thread(path.touch)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HEARTBEAT_EVERY)
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)
