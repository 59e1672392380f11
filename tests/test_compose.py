"""docker-compose.yml, checked statically (no Docker engine runs where the tests do).

What a broken compose file would otherwise only show at ``docker compose up`` on someone's
machine: a service without a healthcheck or restart policy, a one-shot job nobody waits for,
an unpinned image, an environment variable the settings class silently ignores (a typo), two
services on one host port, a worker that cannot scale, a stop timeout shorter than the drain.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from launcher.cli import app
from schemas import search_attributes as sa
from schemas.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DEPLOY_DOC = (ROOT / "docs" / "deploy.md").read_text("utf-8")
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]

#: variables incidentflow services may set that are not Settings fields (none today: a name
#: here must say why it is needed)
ALLOWED_EXTRA_ENV: frozenset[str] = frozenset()

SETTINGS_FIELDS = {name.upper() for name in Settings.model_fields}
_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}")


def interpolate(value: object) -> str:
    """A value as compose would resolve it with an empty environment (defaults applied)."""
    return _INTERPOLATION.sub(lambda m: m["default"] or "", str(value))


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
    assert ONE_SHOT == {"temporal-admin-tools", "migrate"}


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
    unknown = set(env) - SETTINGS_FIELDS - ALLOWED_EXTRA_ENV
    assert not unknown, f"{name}: not a Settings field (typo?): {sorted(unknown)}"


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


def test_the_init_job_registers_every_search_attribute_as_keyword() -> None:
    script = " ".join(SERVICES["temporal-admin-tools"]["command"])
    for key in sa.ALL:
        assert key.name in script
    assert "--type Keyword" in script
    # compose would interpolate a lone $ itself: shell variables must be written $$
    assert not re.search(r"(?<!\$)\$(?!\$)[A-Za-z{]", script.replace("$$", ""))


def test_temporal_runs_on_the_compose_postgresql() -> None:
    env = environment(SERVICES["temporal"])
    assert env["DB"] == "postgres12"
    assert env["POSTGRES_SEEDS"] == "postgresql"
    assert env["POSTGRES_PWD"] == environment(SERVICES["postgresql"])["POSTGRES_PASSWORD"]
    assert SERVICES["temporal"]["image"].startswith("temporalio/auto-setup:")


def test_every_compose_variable_is_documented() -> None:
    text = (ROOT / "docker-compose.yml").read_text("utf-8").replace("$$", "")
    variables = {m["name"] for m in _INTERPOLATION.finditer(text)}
    missing = sorted(v for v in variables if v not in DEPLOY_DOC)
    assert not missing, f"docs/deploy.md does not mention {missing}"


def test_every_setting_is_documented() -> None:
    missing = sorted(f for f in SETTINGS_FIELDS if f not in DEPLOY_DOC)
    assert not missing, f"docs/deploy.md's environment reference lacks {missing}"
