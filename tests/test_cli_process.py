"""The process commands of ``incidentflow`` (migrate, worker, api, version, --help) run as a
user runs them: the venv's console script in a subprocess, checked by exit code and output."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from launcher.cli import app
from schemas.dev_credentials import DEV_INTEGRATION_KEYS, DEV_SECRETS, DEV_TOKENS
from schemas.tokens import hash_token
from starter.cli.dev_connection import DevConnection, write_connection
from tests.conftest import wait_for
from tests.support_cli import EXAMPLE_POLICY, clean_env, free_ports, run_cli, spawn
from worker.devinfra import free_port, fresh_database


def test_console_script_help_lists_the_process_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for name in ("dev", "worker", "api", "migrate", "policy", "version"):
        assert name in result.stdout


@pytest.mark.parametrize(
    "command", [["dev"], ["worker"], ["api"], ["migrate"], ["policy", "check"], ["version"]]
)
def test_every_command_has_help(command: list[str]) -> None:
    # in-process (typer's runner): the console script itself is covered above
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: incidentflow {' '.join(command)}" in result.output
    assert len(result.output.splitlines()) > 5


ENTRY_POINT_PROBE = """
import atexit, sys
from launcher import cli

class Finalized:
    def __del__(self):
        print("finalized", flush=True)

probe = Finalized()  # collected only if the interpreter tears itself down
atexit.register(lambda: print("atexit ran", flush=True))
sys.argv = ["incidentflow", *sys.argv[1:]]
cli.main()
print("not reached", flush=True)
"""


@pytest.mark.parametrize(("args", "code"), [(["version"], 0), (["no-such-command"], 2)])
def test_entry_point_exits_with_the_code_and_skips_interpreter_teardown(
    args: list[str], code: int
) -> None:
    """``launcher.cli:main`` keeps the command's exit code and output and runs ``atexit``
    (an embedded PostgreSQL stops there) but not CPython's finalization, where the Temporal
    runtime's threads could crash a finished command (a SIGSEGV turned verify's 1 into -11)."""
    result = subprocess.run(
        [sys.executable, "-c", ENTRY_POINT_PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert result.returncode == code, result.stderr
    assert "atexit ran" in result.stdout
    assert "finalized" not in result.stdout and "not reached" not in result.stdout
    if code == 0:
        assert result.stdout.startswith("incidentflow 0.1.0")


def test_version() -> None:
    result = run_cli("version")
    assert result.returncode == 0
    assert result.stdout.startswith("incidentflow 0.1.0")


def test_unknown_command_is_a_usage_error() -> None:
    assert run_cli("no-such-command").returncode == 2


def test_migrate_is_a_no_op_on_a_migrated_database(database_url: str) -> None:
    env = {**clean_env(), "DATABASE_URL": database_url}
    result = run_cli("migrate", env=env)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_migrate_applies_versions_to_a_new_database(postgres_server: str) -> None:
    with fresh_database(postgres_server, "incidentflow_cli_migrate", migrate=False) as url:
        result = run_cli("migrate", "--database-url", url)
        assert result.returncode == 0, result.stderr
        assert "applied 0001_initial" in result.stdout
        with psycopg.connect(url) as conn:
            versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
        assert "0001_initial" in versions


def test_migrate_without_a_database_is_a_usage_error(tmp_path: Path) -> None:
    # from a directory with no dev stack's connection info (a checkout that ran `make run`
    # keeps one in .data, which migrate would rightly use)
    result = run_cli("migrate", cwd=tmp_path)
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr


def test_migrate_against_an_unreachable_server_exits_3() -> None:
    url = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/incidentflow?connect_timeout=3"
    result = run_cli("migrate", "--database-url", url)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "unreachable" in result.stderr
    assert "secret" not in result.stderr


def test_worker_with_a_broken_policy_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("services: []\nbogus: 1\n")
    env = {**clean_env(), "INCIDENTFLOW_POLICY": str(broken), "DATABASE_URL": "postgresql:///x"}
    result = run_cli("worker", env=env)
    assert result.returncode == 2
    assert f"{broken}:2: bogus: unknown field" in result.stderr


@pytest.mark.parametrize("command", [["worker"], ["api", "--port", "1"]])
def test_worker_and_api_refuse_the_published_dev_credentials(command: list[str]) -> None:
    # DATABASE_URL set and Temporal unreachable: only the policy check can stop it with 2
    env = {
        **clean_env(),
        "INCIDENTFLOW_POLICY": str(EXAMPLE_POLICY),
        "DATABASE_URL": "postgresql:///x",
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    result = run_cli(*command, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    text = " ".join(result.stderr.split())  # rich wraps at the terminal's width
    assert f"{EXAMPLE_POLICY}: holds 7 development credentials" in text
    for path in (
        "channels.3.secret",
        "services.0.integration_keys.0",
        "services.0.integration_keys.1",
        "services.1.integration_keys.0",
        "services.2.integration_keys.0",
        "tokens.0.sha256 (token of 'dev-admin')",
        "tokens.1.sha256 (token of 'dev-responder')",
    ):
        assert path in text
    assert "generate_token" in text and "INCIDENTFLOW_ALLOW_DEV_CREDENTIALS=1" in text
    for value in (*DEV_TOKENS, *DEV_INTEGRATION_KEYS, *DEV_SECRETS):
        assert value not in result.stdout + result.stderr
    for value in (hash_token(token) for token in DEV_TOKENS):
        assert value not in result.stdout + result.stderr


def test_beside_a_dev_stack_the_worker_serves_the_example_policy(
    database_url: str, tmp_path: Path
) -> None:
    # a connection.json left by `incidentflow dev` supplies Temporal: that is development
    dead_temporal = f"127.0.0.1:{free_port()}"
    write_connection(
        tmp_path,
        DevConnection(
            temporal_address=dead_temporal,
            temporal_namespace="default",
            database_url=database_url,
            api_url="http://127.0.0.1:1",
            pid=1,
        ),
    )
    env = {**clean_env(), "INCIDENTFLOW_POLICY": str(EXAMPLE_POLICY)}
    env.pop("INCIDENTFLOW_ALLOW_DEV_CREDENTIALS", None)
    beside = run_cli("worker", "--data-dir", str(tmp_path), env=env)
    assert beside.returncode == 3, beside.stdout + beside.stderr  # past the check
    assert "Temporal unreachable" in beside.stderr
    # the same with TEMPORAL_ADDRESS set, as every deployment does: refused
    env["TEMPORAL_ADDRESS"] = dead_temporal
    deployed = run_cli("worker", "--data-dir", str(tmp_path), env=env)
    assert deployed.returncode == 2, deployed.stdout + deployed.stderr
    assert "development credentials" in deployed.stderr


@pytest.mark.parametrize("command", [["worker"], ["api", "--port", "1"]])
def test_worker_and_api_without_a_policy_file_say_how_to_mount_one(
    command: list[str], tmp_path: Path
) -> None:
    missing = tmp_path / "policy.yaml"
    env = {**clean_env(), "INCIDENTFLOW_POLICY": str(missing), "DATABASE_URL": "postgresql:///x"}
    result = run_cli(*command, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    text = " ".join(result.stderr.split())
    assert f"no policy file at {missing}" in text
    assert "/etc/incidentflow/policy.yaml:ro" in text
    assert "examples/policy.production.yaml" in text


def test_worker_without_temporal_exits_3(database_url: str) -> None:
    env = {
        **clean_env(),
        "INCIDENTFLOW_POLICY": str(EXAMPLE_POLICY),
        "INCIDENTFLOW_ALLOW_DEV_CREDENTIALS": "1",
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    result = run_cli("worker", env=env)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Temporal unreachable" in result.stderr


async def test_api_serves_and_stops_on_sigterm(
    temporal_env: WorkflowEnvironment, database_url: str, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    env = {
        **clean_env(),
        "INCIDENTFLOW_POLICY": str(EXAMPLE_POLICY),
        "INCIDENTFLOW_ALLOW_DEV_CREDENTIALS": "1",
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
    }
    log = tmp_path / "api.log"
    proc = spawn(["api", "--port", str(port)], log, env)
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:

            async def ready() -> bool:
                assert proc.poll() is None, log.read_text()
                try:
                    return (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(ready, timeout=30, interval=0.1, message="/readyz of incidentflow api")
        proc.send_signal(signal.SIGTERM)
        await wait_for(lambda: proc.poll() is not None, timeout=20, message="api exit")
        assert proc.returncode == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
