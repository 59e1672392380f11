"""incidentflow against a Temporal server it did not start: the production shape.

A ``temporal server start-dev`` runs on its own (not the embedded launcher, not the test
fixture), bare: the search attributes are registered by the very init script of
docker-compose.yml's ``temporal-admin-tools`` job. Then ``incidentflow worker`` and
``incidentflow api`` run as separate processes configured only by environment variables, and
an incident goes in through the HTTP API. A second test puts a mutual-TLS front (as a
cluster's ingress or Temporal Cloud would have) before that server and connects through it
with TEMPORAL_TLS_CERT / _KEY / _CA / _SERVER_NAME; without a client certificate the worker
is turned away.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trustme
import yaml
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from schemas import search_attributes as sa
from schemas.connection import connect_temporal
from schemas.incident import Alert
from schemas.settings import Settings
from starter.client import IncidentClient
from tests.conftest import wait_for
from tests.support_deploy import (
    API_TOKEN,
    MutualTlsProxy,
    children,
    deploy_policy,
    free_ports,
    process_env,
    rows,
    write_policy,
)

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "default"


def compose_init_script() -> str:
    """The shell script of the compose job that registers the search attributes."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    job = compose["services"]["temporal-admin-tools"]
    assert job["entrypoint"] == ["/bin/sh", "-c"]
    return str(job["command"][0]).replace("$$", "$")  # compose's escape for a literal $


async def run_init_script(address: str) -> str:
    env = process_env(temporal_address=address, namespace=NAMESPACE)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = await asyncio.create_subprocess_exec(
        "sh",
        "-c",
        compose_init_script(),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    return text


@pytest.fixture(scope="module")
async def remote_temporal(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """Address of a bare dev server of its own, search attributes added by the init script."""
    grpc, http = free_ports(2)
    address = f"127.0.0.1:{grpc}"
    with children(tmp_path_factory.mktemp("remote-temporal")) as procs:
        server = procs.temporal_dev_server("temporal", grpc, http, search_attributes=False)

        async def connected() -> Client | None:
            assert server.process.poll() is None, server.tail()
            try:
                return await Client.connect(address, namespace=NAMESPACE)
            except RuntimeError:
                return None

        client = await wait_for(connected, timeout=60, interval=0.25, message="the dev server")
        first = await run_init_script(address)
        again = await run_init_script(address)  # a restarted job must succeed too
        assert "present" not in first
        assert again.count("present") == len(sa.ALL)
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=NAMESPACE)
        )
        for key in sa.ALL:
            assert listed.custom_attributes[key.name] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        yield address


async def test_worker_and_api_work_against_a_separately_started_server(
    tmp_path: Path, remote_temporal: str, database_url: str
) -> None:
    api_port = free_ports(1)[0]
    policy = deploy_policy()
    env = process_env(
        temporal_address=remote_temporal,
        temporal_namespace=NAMESPACE,
        database_url=database_url,
        incidentflow_policy=str(write_policy(tmp_path / "policy.yaml", policy)),
    )  # the default task queue: nothing else polls this server
    base = f"http://127.0.0.1:{api_port}"
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    with children(tmp_path) as procs:
        worker = procs.worker("worker", env)
        api = procs.api("api", env, api_port)
        await worker.wait_log("worker polling task queue")
        async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as http:

            async def ready() -> bool:
                assert api.process.poll() is None, api.tail()
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(ready, timeout=30, interval=0.2, message="the API to be ready")
            created = await http.post(
                "/api/v1/incidents",
                json={
                    "title": "checkout is down",
                    "service": "checkout",
                    "dedup_key": f"remote-{uuid.uuid4().hex[:8]}",
                    "severity": "SEV2",
                },
            )
            assert created.status_code == 201, created.text
            number = created.json()["number"]

            async def ticket() -> list[dict[str, object]]:
                return await rows(
                    database_url,
                    "SELECT workflow_id, status, severity FROM incidents WHERE number = %s",
                    number,
                )

            found = await wait_for(ticket, timeout=15, message="the ticket row")
            assert found[0]["status"] == "triggered"
            assert found[0]["severity"] == "SEV2"

            live = await http.get(f"/api/v1/incidents/{number}")
            assert live.status_code == 200, live.text
            assert live.headers["X-Incident-Source"] == "live"
            state = live.json()
            assert state["status"] == "triggered"
            assert state["escalation"]["level"] == 1
            assert state["workflow_id"] == found[0]["workflow_id"]

        # the search attributes the init script registered are the ones the workflow upserts
        client = await Client.connect(remote_temporal, namespace=NAMESPACE)

        async def listed() -> list[str]:
            query = f"IncidentNumber = '{number}' AND IncidentSeverity = 'SEV2'"
            return [w.id async for w in client.list_workflows(query)]

        assert await wait_for(listed, timeout=15, message="the visibility listing") == [
            found[0]["workflow_id"]
        ]

        for child in (api, worker):
            child.signal(signal.SIGTERM)
        assert await worker.wait_exit(within=20) == 0, worker.tail()
        assert await api.wait_exit(within=20) == 0, api.tail()


async def test_worker_connects_over_mutual_tls_and_is_refused_without_a_client_cert(
    tmp_path: Path, remote_temporal: str, database_url: str, task_queue: str
) -> None:
    server_name = "temporal.incidentflow.test"
    ca = trustme.CA()
    front = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(server_name).configure_cert(front)
    ca.configure_trust(front)
    front.verify_mode = ssl.CERT_REQUIRED
    front.set_alpn_protocols(["h2"])
    leaf = ca.issue_cert("worker.incidentflow.test")
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "tls.crt", tmp_path / "tls.key"
    ca.cert_pem.write_to_path(str(ca_file))
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))

    policy = deploy_policy()
    host, port = remote_temporal.rsplit(":", 1)
    async with MutualTlsProxy(front, (host, int(port))) as proxy:
        common = {
            "temporal_address": f"127.0.0.1:{proxy.port}",
            "temporal_namespace": NAMESPACE,
            "temporal_tls_ca": str(ca_file),
            "temporal_tls_server_name": server_name,
            "temporal_task_queue": task_queue,
            "database_url": database_url,
            "incidentflow_policy": str(write_policy(tmp_path / "policy.yaml", policy)),
        }
        mtls = {**common, "temporal_tls_cert": str(cert_file), "temporal_tls_key": str(key_file)}
        with children(tmp_path) as procs:
            anonymous = procs.worker("anonymous", process_env(**common))
            assert await anonymous.wait_exit(within=30) == 3, anonymous.tail()
            assert "Temporal unreachable" in anonymous.log()
            assert proxy.handshakes_refused >= 1

            worker = procs.worker("worker", process_env(**mtls))
            await worker.wait_log("worker polling task queue")
            client = await connect_temporal(Settings.model_validate(mtls))  # same, in-process
            incidents = IncidentClient(client, policy, task_queue=task_queue)
            ref = await incidents.trigger(Alert(service="checkout", title="over mTLS"))

            async def paged() -> bool:
                sent = await rows(
                    database_url,
                    "SELECT status FROM notifications WHERE number = %s AND recipient = 'alice'",
                    ref.number,
                )
                return sent == [{"status": "sent"}]

            await wait_for(paged, timeout=15, message="level 1 paged by the mTLS worker")
            worker.signal(signal.SIGTERM)
            assert await worker.wait_exit(within=20) == 0, worker.tail()
