"""docker-compose.yml, checked statically (no Docker engine runs where the tests do).

What a broken compose file would otherwise only show at ``docker compose up`` on someone's
machine: a service without a healthcheck or restart policy, a one-shot job nobody waits for,
an unpinned image, an environment variable the settings class silently ignores (a typo), two
services on one host port, a worker that cannot scale, a stop timeout shorter than the drain.
And what would be unsafe to expose: Temporal's gRPC port or UI on every interface, a
password with a known default, one database user for Temporal and incidentflow, the example
policy (and its published credentials) mounted, a Temporal server other than the one we test.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from launcher.cli import app
from schemas import search_attributes as sa
from schemas.settings import Settings
from tests.support_env import every_env_name, policy_named_env

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DEPLOY_DOC = (ROOT / "docs" / "deploy.md").read_text("utf-8")
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]

PRODUCTION_POLICY = ROOT / "examples" / "policy.production.yaml"
#: the ``${NAME}`` references of the production policy template, which compose passes through
POLICY_REFERENCES = frozenset(
    re.findall(r"(?m)^[^#\n]*\$\{([A-Z0-9_]+)\}", PRODUCTION_POLICY.read_text("utf-8"))
)
#: variables incidentflow services may set that are not Settings fields: the policy's own
#: ``${ENV}`` references (schemas/policy_secrets.py), which the policy, not Settings, reads
ALLOWED_EXTRA_ENV: frozenset[str] = POLICY_REFERENCES

SETTINGS_FIELDS = {name.upper() for name in Settings.model_fields}
#: every variable the code reads (Settings, the dashboard's settings, os.environ reads)
KNOWN_ENV = set(every_env_name())
_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}")


#: what a required variable (``${NAME:?message}``) stands for in these checks
REQUIRED = "operator-set"


def interpolate(value: object) -> str:
    """A value as compose would resolve it with an empty environment (defaults applied), a
    required variable as :data:`REQUIRED` (compose itself would refuse to start)."""
    return _INTERPOLATION.sub(
        lambda m: REQUIRED if "?" in (m["op"] or "") else m["default"] or "", str(value)
    )


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): interpolate(v) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def is_incidentflow(service: dict[str, Any]) -> bool:
    return "build" in service or str(service.get("image", "")).startswith("incidentflow:")


ONE_SHOT = {
    name
    for service in SERVICES.values()
    for name, condition in depends_on(service).items()
    if condition == "service_completed_successfully"
}
LONG_RUNNING = sorted(set(SERVICES) - ONE_SHOT)
INCIDENTFLOW = sorted(name for name, s in SERVICES.items() if is_incidentflow(s))


def seconds(value: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def test_the_expected_topology_is_there() -> None:
    assert {"postgresql", "temporal", "temporal-admin-tools", "temporal-ui", "migrate"} <= set(
        SERVICES
    )
    assert {"worker", "api"} <= set(INCIDENTFLOW)
    assert ONE_SHOT == {"temporal-schema", "temporal-admin-tools", "migrate"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_an_image_or_build(name: str) -> None:
    service = SERVICES[name]
    assert "image" in service or "build" in service


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_images_are_pinned(name: str) -> None:
    image = str(SERVICES[name].get("image", ""))
    if not image:
        return
    repo, _, tag = image.rpartition(":")
    assert repo and tag, f"{name}: {image} has no tag"
    assert tag != "latest" and "$" not in tag, f"{name}: {image} is not pinned"
    assert re.match(r"\d+\.\d+", tag), f"{name}: {image}: pin at least major.minor"


def test_the_incidentflow_image_is_tagged_with_the_project_version() -> None:
    for name in INCIDENTFLOW:
        assert SERVICES[name]["image"] == f"incidentflow:{PROJECT_VERSION}", name
        assert SERVICES[name]["build"]["context"] == "."


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_a_healthcheck_and_restart(name: str) -> None:
    service = SERVICES[name]
    check = service.get("healthcheck") or {}
    assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    assert service.get("restart") in ("always", "unless-stopped"), name


@pytest.mark.parametrize("name", sorted(ONE_SHOT))
def test_one_shot_jobs_restart_only_on_failure(name: str) -> None:
    restart = str(SERVICES[name].get("restart", "no"))
    assert restart == "no" or re.fullmatch(r"on-failure(:\d+)?", restart), restart


def test_depends_on_targets_exist_and_conditions_are_valid() -> None:
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in SERVICES.items():
        for target, condition in depends_on(service).items():
            assert target in SERVICES, f"{name} depends on unknown {target}"
            assert condition in conditions, f"{name} -> {target}: {condition}"
            if condition == "service_healthy":
                assert target in LONG_RUNNING, f"{name} waits for {target}, which has no health"
            if target in LONG_RUNNING and target != name:
                assert condition == "service_healthy", f"{name} -> {target}: wait for health"


def test_depends_on_has_no_cycle() -> None:
    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        for target in depends_on(SERVICES[name]):
            visit(target, (*path, name))

    for name in SERVICES:
        visit(name, ())


@pytest.mark.parametrize("name", INCIDENTFLOW)
def test_incidentflow_env_names_match_settings_fields(name: str) -> None:
    env = environment(SERVICES[name])
    unknown = set(env) - KNOWN_ENV - ALLOWED_EXTRA_ENV
    assert not unknown, f"{name}: no code reads (typo?): {sorted(unknown)}"


@pytest.mark.parametrize("name", INCIDENTFLOW)
def test_incidentflow_env_values_are_valid_settings(name: str) -> None:
    env = environment(SERVICES[name])
    values = {k.lower(): v for k, v in env.items() if k in SETTINGS_FIELDS and v != ""}
    Settings.model_validate(values)  # raises on a value of the wrong type


def test_worker_and_api_share_one_configuration() -> None:
    worker, api = environment(SERVICES["worker"]), environment(SERVICES["api"])
    for key in set(worker) & set(api):
        assert worker[key] == api[key], key
    assert environment(SERVICES["migrate"])["DATABASE_URL"] == worker["DATABASE_URL"]
    host = re.search(r"@([^:/]+)", worker["DATABASE_URL"])
    assert host and host[1] == "postgresql"
    assert worker["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_host_ports_do_not_collide() -> None:
    seen: dict[str, str] = {}
    for name, service in SERVICES.items():
        for port in service.get("ports") or []:
            if isinstance(port, dict):
                host = str(port.get("published", ""))
            else:
                parts = str(port).split(":")
                host = parts[-2] if len(parts) >= 2 else ""
            if not host:
                continue
            assert host not in seen, f"host port {host}: {seen[host]} and {name}"
            seen[host] = name
    assert seen.get("8000") == "api"


def test_the_worker_scales() -> None:
    worker = SERVICES["worker"]
    assert "container_name" not in worker, "--scale needs generated container names"
    assert not worker.get("ports"), "--scale cannot bind one host port N times"


@pytest.mark.parametrize(
    ("name", "grace_setting"),
    [("worker", "WORKER_SHUTDOWN_GRACE_SECONDS"), ("api", "API_SHUTDOWN_GRACE_SECONDS")],
)
def test_stop_grace_period_outlasts_the_drain(name: str, grace_setting: str) -> None:
    service = SERVICES[name]
    grace = float(environment(service)[grace_setting])
    assert seconds(str(service["stop_grace_period"])) > grace, (
        f"{name}: docker sends SIGKILL before the {grace}s drain can end"
    )


def test_worker_healthcheck_reads_the_file_the_worker_touches() -> None:
    worker = SERVICES["worker"]
    health_file = environment(worker)["WORKER_HEALTH_FILE"]
    assert health_file in " ".join(worker["healthcheck"]["test"])


def test_api_healthcheck_probes_the_port_it_serves() -> None:
    api = SERVICES["api"]
    command = api["command"]
    port = command[command.index("--port") + 1]
    assert f"127.0.0.1:{port}/healthz" in " ".join(api["healthcheck"]["test"])
    assert any(str(p).endswith(f":{port}") for p in api["ports"])


@pytest.mark.parametrize("name", INCIDENTFLOW)
def test_commands_are_valid_cli_invocations(name: str) -> None:
    command = SERVICES[name]["command"]
    assert command[0] == "incidentflow"
    result = CliRunner().invoke(app, [*command[1:], "--help"])
    assert result.exit_code == 0, result.output


def no_lone_dollar(script: str) -> bool:
    """Compose would interpolate a lone ``$`` itself: shell variables must be written ``$$``."""
    return not re.search(r"(?<!\$)\$(?!\$)[A-Za-z{]", script.replace("$$", ""))


def test_the_init_job_creates_the_namespace_and_every_search_attribute_as_keyword() -> None:
    script = " ".join(SERVICES["temporal-admin-tools"]["command"])
    assert "temporal operator namespace create" in script
    for key in sa.ALL:
        assert key.name in script
    assert "--type Keyword" in script
    assert no_lone_dollar(script)


def temporal_server_version() -> str:
    """major.minor of the server in the Temporal CLI the tests run (temporal --version)."""
    from worker.devinfra import temporal_binary

    out = subprocess.run(
        [temporal_binary(), "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    match = re.search(r"Server (\d+\.\d+)\.", out)
    assert match, out
    return match[1]


def test_temporal_is_the_server_version_we_test_against() -> None:
    version = temporal_server_version()
    image = SERVICES["temporal"]["image"]
    assert image.startswith(f"temporalio/server:{version}."), (image, version)
    for name in ("temporal-schema", "temporal-admin-tools"):
        tools = SERVICES[name]["image"]
        assert tools.startswith(f"temporalio/admin-tools:{version}."), (name, tools)
    assert not any("auto-setup" in str(s.get("image")) for s in SERVICES.values())


def test_a_schema_job_sets_up_temporal_before_the_server_starts() -> None:
    assert depends_on(SERVICES["temporal"]) == {"temporal-schema": "service_completed_successfully"}
    script = " ".join(SERVICES["temporal-schema"]["command"])
    assert "temporal-sql-tool --plugin postgres12" in script
    assert "setup-schema -v 0.0" in script and "update-schema -d" in script
    for db in ("temporal", "temporal_visibility"):
        assert db in script
    assert no_lone_dollar(script)


def test_temporal_runs_on_the_compose_postgresql_as_its_own_user() -> None:
    env = environment(SERVICES["temporal"])
    assert env["DB"] == "postgres12"
    assert env["POSTGRES_SEEDS"] == "postgresql"
    assert env["POSTGRES_USER"] == "temporal"
    raw = SERVICES["temporal"]["environment"]["POSTGRES_PWD"]
    assert "TEMPORAL_DB_PASSWORD" in raw
    assert "TEMPORAL_DB_PASSWORD" in SERVICES["temporal-schema"]["environment"]["SQL_PASSWORD"]
    assert "-u temporal" in " ".join(SERVICES["temporal-schema"]["command"])


def test_incidentflow_logs_in_as_another_user_than_temporal_and_the_superuser() -> None:
    postgres = environment(SERVICES["postgresql"])
    url = environment(SERVICES["worker"])["DATABASE_URL"]
    user = re.match(r"postgresql://([^:@]+)", url)
    assert user and user[1] == "incidentflow"
    assert user[1] not in (
        postgres["POSTGRES_USER"],
        environment(SERVICES["temporal"])["POSTGRES_USER"],
    )
    raw = SERVICES["worker"]["environment"]["DATABASE_URL"]
    assert "INCIDENTFLOW_DB_PASSWORD" in raw and "POSTGRES_PASSWORD" not in raw


def test_an_init_script_creates_each_application_its_role_and_databases() -> None:
    mounts = [v for v in SERVICES["postgresql"]["volumes"] if isinstance(v, dict)]
    (init,) = [m for m in mounts if m["target"].startswith("/docker-entrypoint-initdb.d/")]
    assert init["target"].endswith(".sh") and init.get("read_only") is True
    script = (ROOT / init["source"]).read_text("utf-8")
    for statement in (
        "CREATE ROLE incidentflow LOGIN",
        "CREATE DATABASE incidentflow OWNER incidentflow",
        "CREATE ROLE temporal LOGIN",
        "CREATE DATABASE temporal OWNER temporal",
        "CREATE DATABASE temporal_visibility OWNER temporal",
    ):
        assert statement in script
    postgres = SERVICES["postgresql"]["environment"]
    for password in ("INCIDENTFLOW_DB_PASSWORD", "TEMPORAL_DB_PASSWORD"):
        assert password in script and password in postgres[password]


@pytest.mark.parametrize(
    ("service", "variable"),
    [
        ("postgresql", "POSTGRES_PASSWORD"),
        ("postgresql", "INCIDENTFLOW_DB_PASSWORD"),
        ("postgresql", "TEMPORAL_DB_PASSWORD"),
        ("temporal", "POSTGRES_PWD"),
        ("temporal-schema", "SQL_PASSWORD"),
        ("worker", "DATABASE_URL"),
        ("api", "DATABASE_URL"),
        ("migrate", "DATABASE_URL"),
    ],
)
def test_passwords_are_required_never_defaulted(service: str, variable: str) -> None:
    raw = str(SERVICES[service]["environment"][variable])
    refs = [m for m in _INTERPOLATION.finditer(raw) if "PASSWORD" in m["name"]]
    assert refs, f"{service}.{variable}: {raw}"
    for ref in refs:
        assert ref["op"] == ":?", f"{service}.{variable}: ${{{ref['name']}}} must be :? (required)"


def test_no_password_anywhere_has_a_default() -> None:
    text = (ROOT / "docker-compose.yml").read_text("utf-8")
    for m in _INTERPOLATION.finditer(text):
        if re.search(r"PASSWORD|SECRET|TOKEN|KEY", m["name"]) and m["default"]:
            assert m["op"] == ":?", f"${{{m['name']}}} has the default {m['default']!r}"


@pytest.mark.parametrize("name", ["temporal", "temporal-ui"])
def test_temporal_publishes_on_loopback_only(name: str) -> None:
    ports = SERVICES[name]["ports"]
    assert ports
    for port in ports:
        assert str(port).startswith("127.0.0.1:"), f"{name}: {port} listens on every interface"


def test_only_the_api_publishes_on_every_interface() -> None:
    for name, service in SERVICES.items():
        for port in service.get("ports") or []:
            if not str(port).startswith("127.0.0.1:"):
                assert name == "api", f"{name}: {port}"


@pytest.mark.parametrize("name", ["worker", "api"])
def test_the_operators_policy_is_mounted_not_the_example(name: str) -> None:
    (mount,) = [
        v
        for v in SERVICES[name]["volumes"]
        if isinstance(v, dict) and v["target"] == "/etc/incidentflow/policy.yaml"
    ]
    assert mount["type"] == "bind" and mount.get("read_only") is True
    assert mount["source"] == "./policy.yaml"
    # long syntax without create_host_path: a missing file fails `up` (not an empty dir)
    assert not mount.get("bind", {}).get("create_host_path")
    assert environment(SERVICES[name])["INCIDENTFLOW_POLICY"] == mount["target"]
    assert "examples/" not in str(SERVICES[name]["volumes"])


def test_compose_passes_every_reference_of_the_production_policy() -> None:
    assert POLICY_REFERENCES, "the template keeps its credentials in ${ENV} references"
    for name in ("worker", "api"):
        assert POLICY_REFERENCES <= set(environment(SERVICES[name])), name


def test_compose_passes_the_slack_apps_secrets_to_worker_and_api() -> None:
    for name in ("worker", "api"):
        env = environment(SERVICES[name])
        for secret in policy_named_env():
            assert env[secret] == "", f"{name}: {secret} (empty unless .env sets it)"


def test_every_compose_variable_is_documented() -> None:
    text = (ROOT / "docker-compose.yml").read_text("utf-8").replace("$$", "")
    variables = {m["name"] for m in _INTERPOLATION.finditer(text)}
    missing = sorted(v for v in variables if v not in DEPLOY_DOC)
    assert not missing, f"docs/deploy.md does not mention {missing}"
