"""Worker Versioning from the environment: WORKER_BUILD_ID makes the worker a deployment
version, and once that version is made current (the CLI command docs/deploy.md gives),
new incidents run on it with the AUTO_UPGRADE behaviour. Without it, workers stay unversioned.
"""

from __future__ import annotations

import asyncio
import uuid

from temporalio.api.enums.v1 import VersioningBehavior
from temporalio.testing import WorkflowEnvironment

from activities.db import create_pool
from schemas.incident import Alert
from schemas.settings import Settings
from starter.client import IncidentClient
from tests.conftest import wait_for
from tests.support_deploy import deploy_policy
from worker.devinfra import temporal_binary
from worker.main import build_worker, deployment_config


def test_unversioned_unless_a_build_id_is_set() -> None:
    assert deployment_config(Settings(worker_build_id=None)) is None
    assert deployment_config(Settings(worker_build_id="")) is None
    config = deployment_config(Settings(worker_build_id="2026.11.1", worker_deployment_name="if"))
    assert config is not None and config.use_worker_versioning
    assert (config.version.deployment_name, config.version.build_id) == ("if", "2026.11.1")


async def set_current_version(env: WorkflowEnvironment, deployment: str, build_id: str) -> bool:
    proc = await asyncio.create_subprocess_exec(
        temporal_binary(),
        "worker",
        "deployment",
        "set-current-version",
        "--address",
        env.client.service_client.config.target_host,
        "--namespace",
        env.client.namespace,
        "--deployment-name",
        deployment,
        "--build-id",
        build_id,
        "--yes",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(proc.wait(), 30) == 0


async def test_incidents_run_on_the_current_version(
    temporal_env: WorkflowEnvironment, database_url: str, task_queue: str
) -> None:
    deployment, build_id = f"incidentflow-{uuid.uuid4().hex[:8]}", "v1"
    settings = Settings(
        database_url=database_url,
        temporal_task_queue=task_queue,
        worker_build_id=build_id,
        worker_deployment_name=deployment,
    )
    policy = deploy_policy()
    pool = await create_pool(database_url, max_size=3)
    try:
        worker = build_worker(temporal_env.client, pool=pool, policy=policy, settings=settings)
        async with worker:
            # the version exists once its worker has polled; then it can become current
            await wait_for(
                lambda: set_current_version(temporal_env, deployment, build_id),
                timeout=20,
                interval=0.5,
                message="the version to become current",
            )
            incidents = IncidentClient(temporal_env.client, policy, task_queue=task_queue)
            ref = await incidents.trigger(Alert(service="checkout", title="versioned"))
            handle = temporal_env.client.get_workflow_handle(ref.workflow_id)
            info = (await handle.describe()).raw_description.workflow_execution_info
            versioning = info.versioning_info
            assert versioning.deployment_version.deployment_name == deployment
            assert versioning.deployment_version.build_id == build_id
            assert versioning.behavior == VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE
    finally:
        await pool.close()
