"""``incidentflow dev`` as a user runs it: the console script, as a subprocess, on free ports.

Proves the embedded stack starts, serves, writes through the worker into PostgreSQL, stops
every process it started on SIGINT, and finds its data again on the next start. Also that a
broken policy stops everything before anything starts.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from schemas.incident import Alert
from schemas.policy_file import load_policy
from schemas.settings import Settings
from starter.cli.dev_connection import DevConnection, settings_with_dev_stack, write_connection
from starter.client import IncidentClient
from tests.conftest import wait_for
from tests.support_cli import (
    EXAMPLE_POLICY,
    clean_env,
    free_ports,
    processes_using,
    run_cli,
    spawn,
)

BROKEN_POLICY = """\
users:
  - name: alice
    emial: alice@example.com
severities:
  SEV1: {ack_within: 5m, mitigate_within: 1h, resolve_within: 4h}
services:
  - name: checkout
    escalation_policy: nowhere
"""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class DevStack:
    """One ``incidentflow dev`` process and what it reports about itself."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir = data_dir
        self.log = log
        self.temporal_port, self.api_port, self.ui_port = free_ports(3)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self) -> None:
        self.proc = spawn(
            [
                "dev",
                "--data-dir",
                str(self.data_dir),
                "--api-port",
                str(self.api_port),
                "--temporal-port",
                str(self.temporal_port),
                "--ui-port",
                str(self.ui_port),
                "--policy",
                str(EXAMPLE_POLICY),
            ],
            self.log,
            clean_env(),
        )

    async def wait_ready(self) -> None:
        async with httpx.AsyncClient(timeout=2.0) as http:

            async def ready() -> bool:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(f"launcher exited early:\n{self.output()}")
                try:
                    return (await http.get(f"{self.api_url}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(ready, timeout=60, interval=0.2, message="/readyz of incidentflow dev")

    def pids(self) -> dict[str, int | None]:
        return json.loads((self.data_dir / "pids.json").read_text())

    def owned_processes(self) -> list[int]:
        """Every process this launcher started: its children and the postmaster's family."""
        assert self.proc is not None
        pids = {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}
        recorded = self.pids()
        assert recorded["launcher"] == self.proc.pid
        assert recorded["temporal"] in pids, "the Temporal dev server is the launcher's child"
        postgres = recorded["postgres"]
        assert postgres is not None and alive(postgres)
        pids.add(postgres)
        pids.update(p.pid for p in psutil.Process(postgres).children(recursive=True))
        return sorted(pids)

    async def stop(self) -> int:
        """SIGINT to the launcher's process group, as Ctrl-C would; return the exit code."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGINT)
        proc = self.proc
        await wait_for(
            lambda: proc.poll() is not None, timeout=45, interval=0.1, message="launcher exit"
        )
        return proc.returncode

    def kill_leftovers(self) -> None:
        """Test clean-up only: whatever a failed run left behind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for proc in processes_using(self.data_dir):
            proc.kill()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    yield path
    for proc in processes_using(path):
        proc.kill()


async def test_dev_stack_stops_cleanly_and_keeps_data(data_dir: Path, tmp_path: Path) -> None:
    policy = load_policy(EXAMPLE_POLICY)
    stack = DevStack(data_dir, tmp_path / "dev.log")
    title = f"dev stack test {uuid.uuid4().hex[:8]}"
    try:
        # ---- first run: start, write through the worker into PostgreSQL, stop
        stack.start()
        await stack.wait_ready()
        output = stack.output()
        for url in (stack.api_url, f"http://127.0.0.1:{stack.ui_port}"):
            assert url in output, output
        database_url = (data_dir / "database_url").read_text().strip()
        assert "incidentflow" in database_url

        client = await Client.connect(
            f"127.0.0.1:{stack.temporal_port}", data_converter=pydantic_data_converter
        )
        incidents = IncidentClient(client, policy)
        ref = await incidents.trigger(Alert(service=policy.services[0].name, title=title))
        assert ref.created

        async def row() -> tuple[str, str] | None:
            async with await psycopg.AsyncConnection.connect(database_url) as conn:
                cur = await conn.execute(
                    "SELECT title, workflow_id FROM incidents WHERE number = %s", (ref.number,)
                )
                return await cur.fetchone()

        assert await wait_for(row, timeout=20, message="the incident row") == (
            title,
            ref.workflow_id,
        )
        # level 1 pages the primary schedule by email: the dev mail catcher receives it
        mails = await wait_for(
            lambda: [p for p in (data_dir / "mail").glob("*.eml") if ref.number in p.read_text()],
            timeout=20,
            message="the page in the dev mail catcher",
        )
        mail = email.message_from_string(mails[0].read_text(), policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        text_part = mail.get_body(("plain",))
        assert text_part is not None
        page = text_part.get_content()
        assert title in page
        # the page links to the dashboard's page of the incident and to a one-tap ack
        links = set(re.findall(r"http://127\.0\.0\.1:\d+/dashboard/[^\s\"<>)]+", page))
        assert f"{stack.api_url}/dashboard/incidents/{ref.number}" in links, links
        assert any(link.startswith(f"{stack.api_url}/dashboard/ack/") for link in links), links
        async with httpx.AsyncClient(follow_redirects=False, timeout=10) as http:
            for link in links:
                answer = await http.get(link)
                assert answer.status_code in (200, 303), (link, answer.status_code)

        # commands find the stack through <data-dir>/connection.json: no environment needed
        info = json.loads((data_dir / "connection.json").read_text())
        assert info["temporal_address"] == f"127.0.0.1:{stack.temporal_port}"
        assert info["database_url"] == database_url
        assert (data_dir / "connection.json").stat().st_mode & 0o077 == 0
        verified = await asyncio.to_thread(
            run_cli, "verify", "--data-dir", str(data_dir), "--settle", "1"
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "incident(s)" in verified.stdout and "clean" in verified.stdout
        # the default data dir is ./.data
        (tmp_path / ".data").symlink_to(data_dir)
        migrated = await asyncio.to_thread(run_cli, "migrate", cwd=tmp_path)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        assert "up to date" in migrated.stdout
        owned = stack.owned_processes()
        assert (data_dir / "temporal.db").exists()

        assert await stack.stop() == 0, stack.output()
        assert [pid for pid in owned if alive(pid)] == [], "processes outlived the launcher"
        assert processes_using(data_dir) == []

        # ---- second run: same data dir, new ports; the row and the workflow are still there
        stack.temporal_port, stack.api_port, stack.ui_port = free_ports(3)
        stack.start()
        await stack.wait_ready()
        assert await row() == (title, ref.workflow_id)
        client = await Client.connect(
            f"127.0.0.1:{stack.temporal_port}", data_converter=pydantic_data_converter
        )
        snapshot = await IncidentClient(client, policy).get(ref.number)
        assert snapshot.number == ref.number
        assert snapshot.title == title

        owned = stack.owned_processes()
        assert await stack.stop() == 0, stack.output()
        assert [pid for pid in owned if alive(pid)] == []
        assert processes_using(data_dir) == []
    finally:
        stack.kill_leftovers()


def test_verify_without_database_or_dev_stack_says_where_it_looked(tmp_path: Path) -> None:
    result = run_cli("verify", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "DATABASE_URL is not set" in result.stderr
    assert "no `incidentflow dev` stack left its connection info in .data" in result.stderr


def test_the_environment_wins_over_the_dev_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in os.environ:
        if name.startswith(("TEMPORAL_", "DATABASE_", "INCIDENTFLOW_")):
            monkeypatch.delenv(name)
    write_connection(
        tmp_path,
        DevConnection(
            temporal_address="127.0.0.1:17233",
            temporal_namespace="dev-ns",
            database_url="postgresql://dev@127.0.0.1:15432/incidentflow",
            api_url="http://127.0.0.1:18000",
            link_secret="s" * 32,
            pid=1,
        ),
    )
    from_dev = settings_with_dev_stack(tmp_path, Settings())
    assert from_dev.temporal_address == "127.0.0.1:17233"
    assert from_dev.temporal_namespace == "dev-ns"
    assert from_dev.database_url == "postgresql://dev@127.0.0.1:15432/incidentflow"
    assert from_dev.incidentflow_base_url == "http://127.0.0.1:18000"
    assert from_dev.incidentflow_link_secret is not None
    env = Settings(temporal_address="temporal.prod:7233", database_url="postgresql://prod/db")
    mixed = settings_with_dev_stack(tmp_path, env)
    assert mixed.temporal_address == "temporal.prod:7233"
    assert mixed.temporal_namespace == "default"  # the dev namespace belongs to the dev server
    assert mixed.database_url == "postgresql://prod/db"
    assert settings_with_dev_stack(tmp_path / "nothing", env) == env


def test_policy_check_accepts_the_example() -> None:
    result = run_cli("policy", "check", str(EXAMPLE_POLICY))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: 3 services, 2 schedules, 2 escalation policies")


def test_policy_check_lists_every_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN_POLICY)
    result = run_cli("policy", "check", str(broken))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"{broken}:")]
    assert any(f"{broken}:3: users.0.emial: unknown field" in line for line in errors), errors
    assert any(f"{broken}:8: services.0.escalation_policy" in line for line in errors), errors
    assert result.stdout == ""


def test_dev_with_a_broken_policy_starts_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN_POLICY)
    data_dir = tmp_path / "data"
    temporal_port, api_port, ui_port = free_ports(3)
    started = time.monotonic()
    result = run_cli(
        "dev",
        "--data-dir",
        str(data_dir),
        "--temporal-port",
        str(temporal_port),
        "--api-port",
        str(api_port),
        "--ui-port",
        str(ui_port),
        "--policy",
        str(broken),
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{broken}:3: users.0.emial" in result.stderr
    assert "starting" not in result.stdout
    # nothing was started: no data dir, no process that ever knew about it, port still free
    assert not data_dir.exists()
    assert processes_using(data_dir) == []
    with socket.create_server(("127.0.0.1", temporal_port)):
        pass
    assert time.monotonic() - started < 30


def test_dev_with_an_unreachable_database_url_exits_3_and_stops_temporal(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    temporal_port, api_port, ui_port, pg_port = free_ports(4)
    env = {
        **clean_env(),
        "DATABASE_URL": f"postgresql://u:secret@127.0.0.1:{pg_port}/db?connect_timeout=3",
    }
    result = run_cli(
        "dev",
        "--data-dir",
        str(data_dir),
        "--temporal-port",
        str(temporal_port),
        "--api-port",
        str(api_port),
        "--ui-port",
        str(ui_port),
        "--policy",
        str(EXAMPLE_POLICY),
        env=env,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "PostgreSQL unreachable" in result.stdout
    assert "secret" not in result.stdout + result.stderr
    # Temporal had started (its log exists) and was stopped again; no embedded PostgreSQL
    pids = json.loads((data_dir / "pids.json").read_text())
    assert pids["temporal"] is not None and not alive(pids["temporal"])
    assert pids["postgres"] is None and not (data_dir / "pg").exists()
    assert processes_using(data_dir) == []
