"""Reload without restart, on real ``incidentflow api`` and ``incidentflow worker`` processes:
SIGHUP and ``POST /api/v1/admin/policy/reload`` validate the file, then swap it in; a broken
file keeps the old policy and logs every error; ``/readyz`` and ``incidentflow_policy_info``
show the hash; no secret ever reaches a log or an answer. Last, in one process: a reload
reaches new incidents while a running one keeps the policy snapshot it started with."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from schemas.incident import Alert
from schemas.policy_file import PolicyError, load_policy
from schemas.policy_holder import PolicyHolder, policy_hash
from schemas.settings import Settings
from schemas.tokens import generate_token, hash_token
from starter.api.app import create_app
from starter.client import IncidentClient
from tests.conftest import wait_for
from tests.support_api import serve
from tests.support_deploy import (
    API_TOKEN,
    Child,
    children,
    deploy_policy,
    free_ports,
    process_env,
    write_policy,
)
from tests.support_incidents import running_stack
from tests.support_receivers import HttpReceiver, http_receiver_fixture  # noqa: F401


def write_referencing_policy(path: Path, secrets: Path, **alice: str) -> Path:
    """deploy_policy's file, its token hash (and ``alice``'s extras) as references."""
    data: dict[str, Any] = deploy_policy().model_dump(mode="json", exclude_defaults=True)
    data["tokens"][0]["sha256"] = f"file:{secrets}/admin-token-sha256"
    data["tokens"].append(
        {
            "name": "reader",
            "user": "bob",
            "sha256": "${TEST_READER_TOKEN_SHA256}",
            "scopes": ["read"],
        }
    )
    data["users"][0].update(alice)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def hash_with(path: Path, env: dict[str, str]) -> str:
    """The hash the processes should report for the file as it is now."""
    return policy_hash(load_policy(path, env))


async def ready_hash(http: httpx.AsyncClient) -> str | None:
    try:
        response = await http.get("/readyz")
    except httpx.TransportError:
        return None
    return str(response.json()["policy"]) if response.status_code == 200 else None


async def serves(http: httpx.AsyncClient, expected: str) -> bool:
    return await ready_hash(http) == expected


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def policy_info(port: int) -> dict[str, int]:
    """The worker's ``incidentflow_policy_info`` series: hash -> value."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    found: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("incidentflow_policy_info{"):
            labels, value = line.rsplit(" ", 1)
            found[labels.split('hash="', 1)[1].split('"', 1)[0]] = int(float(value))
    return found


def assert_no_secret(child: Child, *values: str) -> None:
    log = child.log()
    for value in values:
        assert value not in log, f"{child.name} logged a secret"


async def test_api_rotates_a_token_on_sighup_keeps_a_broken_file_and_reloads_over_http(
    tmp_path: Path, temporal_env: WorkflowEnvironment, database_url: str, task_queue: str
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    old_token, new_token, reader_token = generate_token(), generate_token(), generate_token()
    (secrets / "admin-token-sha256").write_text(hash_token(old_token) + "\n")
    path = write_referencing_policy(tmp_path / "policy.yaml", secrets)
    settings = {
        "temporal_address": temporal_env.client.service_client.config.target_host,
        "temporal_namespace": temporal_env.client.namespace,
        "temporal_task_queue": task_queue,
        "database_url": database_url,
        "incidentflow_policy": str(path),
    }
    env = process_env(**settings, test_reader_token_sha256=hash_token(reader_token))
    refs = {"TEST_READER_TOKEN_SHA256": hash_token(reader_token)}
    port = free_ports(1)[0]
    with children(tmp_path) as procs:
        api = procs.api("api", env, port)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            first = hash_with(path, refs)
            await wait_for(lambda: serves(http, first), timeout=30, message="API ready")
            assert (await http.get("/metrics", headers=bearer(old_token))).status_code == 200

            # rotate: the mounted secret changes, SIGHUP, the old token is refused
            (secrets / "admin-token-sha256").write_text(hash_token(new_token) + "\n")
            second = hash_with(path, refs)
            assert second != first
            api.signal(signal.SIGHUP)
            await wait_for(lambda: serves(http, second), timeout=15, message="reload")
            assert (await http.get("/metrics", headers=bearer(old_token))).status_code == 401
            metrics = await http.get("/metrics", headers=bearer(new_token))
            assert metrics.status_code == 200
            assert f'incidentflow_policy_info{{hash="{second}"}} 1.0' in metrics.text
            assert first not in metrics.text
            await api.wait_log(f"policy reloaded from {path}: {first} -> {second}")

            # a broken file: the old policy stays, every error is in the log
            good = path.read_text()
            (secrets / "admin-token-sha256").unlink()
            path.write_text(good.replace("- name: bob", "- name: bob\n  pager: yes", 1))
            with pytest.raises(PolicyError) as caught:
                load_policy(path, refs)
            errors = caught.value.errors
            assert len(errors) == 2
            api.signal(signal.SIGHUP)
            await api.wait_log(f"policy reload from {path} failed (2 errors); keeping {second}")
            for error in errors:
                await api.wait_log(f"policy reload: {error}")
            assert await ready_hash(http) == second
            assert (await http.get("/metrics", headers=bearer(new_token))).status_code == 200

            # over HTTP: admin only; 422 with the errors while broken, 200 once fixed
            url = "/api/v1/admin/policy/reload"
            refused = await http.post(url, headers=bearer(reader_token))
            assert refused.status_code == 403
            broken = await http.post(url, headers=bearer(new_token))
            assert broken.status_code == 422
            assert broken.json()["error"] == "invalid_policy"
            assert broken.json()["details"] == {"errors": errors, "hash": second}
            (secrets / "admin-token-sha256").write_text(hash_token(new_token))
            path.write_text(good.replace("scopes:\n  - read", "scopes:\n  - admin"))
            third = hash_with(path, refs)
            reloaded = await http.post(url, headers=bearer(new_token))
            assert reloaded.status_code == 200, reloaded.text
            assert reloaded.json() == {"hash": third, "previous_hash": second, "changed": True}
            assert await ready_hash(http) == third
            # the reader token now holds admin: the new policy authenticates the next request
            again = await http.post(url, headers=bearer(reader_token))
            assert again.status_code == 200, again.text
            assert again.json() == {"hash": third, "previous_hash": third, "changed": False}
    assert_no_secret(
        api,
        old_token,
        new_token,
        reader_token,
        hash_token(old_token),
        hash_token(new_token),
        hash_token(reader_token),
    )


async def test_worker_reload_on_sighup_reaches_new_incidents_notifications(
    tmp_path: Path,
    temporal_env: WorkflowEnvironment,
    database_url: str,
    task_queue: str,
    http_receiver: HttpReceiver,
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "admin-token-sha256").write_text(hash_token(generate_token()))
    hook = secrets / "alice-webhook"
    #: the paths are the secret part of a webhook URL (Slack's are): never logged
    before, after = f"/before-{uuid.uuid4().hex}", f"/after-{uuid.uuid4().hex}"
    hook.write_text(http_receiver.url(before) + "\n")
    path = write_referencing_policy(tmp_path / "policy.yaml", secrets, webhook=f"file:{hook}")
    refs = {"TEST_READER_TOKEN_SHA256": hash_token(generate_token())}
    metrics_port = free_ports(1)[0]
    env = process_env(
        temporal_address=temporal_env.client.service_client.config.target_host,
        temporal_namespace=temporal_env.client.namespace,
        temporal_task_queue=task_queue,
        database_url=database_url,
        incidentflow_policy=str(path),
        test_reader_token_sha256=refs["TEST_READER_TOKEN_SHA256"],
        worker_metrics_address=f"127.0.0.1:{metrics_port}",
    )
    incidents = IncidentClient(temporal_env.client, deploy_policy(), task_queue=task_queue)
    run = uuid.uuid4().hex[:8]
    with children(tmp_path) as procs:
        worker = procs.worker("worker", env)
        first = hash_with(path, refs)
        await worker.wait_log(f"worker serving policy {first}")
        await worker.wait_log("worker polling task queue")
        assert await policy_info(metrics_port) == {first: 1}
        await incidents.trigger(Alert(service="checkout", title="one", dedup_key=f"{run}-1"))
        await http_receiver.wait_requests(before, 1, within=30)

        hook.write_text(http_receiver.url(after))
        second = hash_with(path, refs)
        worker.signal(signal.SIGHUP)
        await worker.wait_log(f"policy reloaded from {path}: {first} -> {second}")
        assert await policy_info(metrics_port) == {first: 0, second: 1}
        await incidents.trigger(Alert(service="checkout", title="two", dedup_key=f"{run}-2"))
        await http_receiver.wait_requests(after, 1, within=30)
        assert len(http_receiver.requests(before)) == 1

        # a broken file leaves the worker paging where it did
        hook.unlink()
        worker.signal(signal.SIGHUP)
        await worker.wait_log(f"policy reload from {path} failed (1 error); keeping {second}")
        await worker.wait_log(f"secret file {hook} does not exist")
        await incidents.trigger(Alert(service="checkout", title="three", dedup_key=f"{run}-3"))
        await http_receiver.wait_requests(after, 2, within=30)
        assert await policy_info(metrics_port) == {first: 0, second: 1}
        assert worker.process.poll() is None
    assert_no_secret(worker, before, after)


async def test_a_reload_reaches_new_incidents_and_running_ones_keep_their_snapshot(
    tmp_path: Path, temporal_client: Client, database_url: str, task_queue: str
) -> None:
    policy = deploy_policy()
    path = write_policy(tmp_path / "policy.yaml", policy)
    holder = PolicyHolder(load_policy(path), path=path)
    settings = Settings(database_url=database_url, temporal_task_queue=task_queue)
    run = uuid.uuid4().hex[:8]
    async with running_stack(temporal_client, database_url, task_queue, policy) as stack:
        app = create_app(settings, holder, temporal=temporal_client)
        async with serve(app) as http:

            async def open_incident(title: str) -> str:
                created = await http.post(
                    "/api/v1/incidents",
                    json={"title": title, "service": "checkout", "dedup_key": f"{run}-{title}"},
                    headers=bearer(API_TOKEN),
                )
                assert created.status_code in (200, 201), created.text
                return str(created.json()["number"])

            before = await open_incident("before")
            data = policy.model_dump(mode="json", exclude_defaults=True)
            data["escalation_policies"][0]["levels"].append({"targets": ["user:alice"]})
            path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
            reloaded = await http.post("/api/v1/admin/policy/reload", headers=bearer(API_TOKEN))
            assert reloaded.status_code == 200, reloaded.text
            after = await open_incident("after")

            running = await stack.client.get(before)
            assert len(running.escalation.policy.levels) == 2  # its snapshot, as triggered
            assert len((await stack.client.get(after)).escalation.policy.levels) == 3
