"""deploy/kubernetes/, checked statically (no cluster and no kustomize binary where tests run).

Each overlay is rendered (tests/support_kustomize.py) and every resulting manifest is
validated against the Kubernetes OpenAPI schemas bundled in ``kubernetes-validate``
(strict: unknown fields are errors), for the oldest Kubernetes we support and the newest
bundled. Then what a schema cannot know: probes, resources, the hardened securityContext,
a pinned image, env names the code actually reads, secrets only from Secrets, the commands.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from pydantic import SecretStr
from pydantic_settings import BaseSettings

import launcher.cli  # noqa: F401  (imports every process, so every settings class exists)
import starter.dashboard.routes  # noqa: F401
from schemas.policy_file import load_policy
from starter.api.ops import router as ops_router
from tests import support_kustomize as kz
from tests.support_env import policy_named_env

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(
    p.parent.relative_to(K8S).as_posix() for p in K8S.glob("overlays/*/kustomization.yaml")
)
TARGETS = ["base", *OVERLAYS]
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
#: the image's user, the one place it is decided
IMAGE_UID = int(re.search(r"^USER (\d+)", (ROOT / "Dockerfile").read_text("utf-8"), re.M)[1])  # type: ignore[index]
#: oldest Kubernetes these manifests are meant for, and the newest schemas bundled
KUBERNETES_VERSIONS = ["1.29.0", latest_version()]
POLICY_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set(cls.__subclasses__())
    return found.union(*(_subclasses(c) for c in found)) if found else found


def _settings_classes() -> list[type[BaseSettings]]:
    ours = ("schemas", "starter", "worker", "launcher", "activities")
    return [c for c in _subclasses(BaseSettings) if c.__module__.split(".")[0] in ours]


def _env_name(cls: type[BaseSettings], field: str) -> str:
    return (str(cls.model_config.get("env_prefix") or "") + field).upper()


#: every environment variable the code reads as a setting
SETTINGS_ENV = {_env_name(c, f) for c in _settings_classes() for f in c.model_fields}
#: secrets whose variable the policy names (the Slack app's token and signing secret)
POLICY_NAMED_SECRETS = set(policy_named_env())
#: settings whose value is a credential: typed SecretStr, named like one, or a URL with the
#: database password inside
SECRET_SETTINGS = (
    {
        _env_name(c, name)
        for c in _settings_classes()
        for name, field in c.model_fields.items()
        if SecretStr in (getattr(field.annotation, "__args__", None) or (field.annotation,))
    }
    | {name for name in SETTINGS_ENV if re.search(r"SECRET|PASSWORD|API_KEY|TOKEN", name)}
    | {"DATABASE_URL"}
    | POLICY_NAMED_SECRETS
)


def rendered(target: str) -> list[kz.Manifest]:
    return kz.render(K8S / target)


RENDERED = {target: rendered(target) for target in TARGETS}


def of_kind(manifests: list[kz.Manifest], kind: str) -> dict[str, kz.Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def containers(manifest: kz.Manifest) -> list[dict[str, Any]]:
    return [c for pod in kz.pod_specs(manifest) for c in pod["containers"]]


def workloads(target: str) -> list[kz.Manifest]:
    return [m for m in RENDERED[target] if kz.pod_specs(m)]


def policy_text(target: str) -> str:
    policy = of_kind(RENDERED[target], "Secret")["incidentflow-policy"]
    return kz.generated_data(policy)["policy.yaml"]


def policy_references(text: str) -> set[str]:
    """The environment variables a policy's ``${NAME}`` values refer to."""

    def scalars(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [s for value in node.values() for s in scalars(value)]
        if isinstance(node, list):
            return [s for value in node for s in scalars(value)]
        return [node] if isinstance(node, str) else []

    return {m[1] for s in scalars(yaml.safe_load(text)) if (m := POLICY_REFERENCE.match(s))}


def env_of(manifests: list[kz.Manifest], container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every variable the container gets: envFrom ConfigMaps (as literal values), then env."""
    config_maps = of_kind(manifests, "ConfigMap")
    env: dict[str, dict[str, Any]] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"{container['name']}: envFrom {source}"
        data = config_maps[source["configMapRef"]["name"]]["data"]
        env.update({name: {"name": name, "value": value} for name, value in data.items()})
    env.update({item["name"]: item for item in container.get("env", [])})
    return env


# -- schemas -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_every_rendered_manifest_is_valid_kubernetes(target: str, version: str) -> None:
    assert RENDERED[target]
    for manifest in RENDERED[target]:
        kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_secret_template_is_valid_kubernetes(version: str) -> None:
    for manifest in kz.load_documents(K8S / "base" / "secrets.example.yaml"):
        kubernetes_validate.validate(manifest, version, strict=True)


def test_the_validator_rejects_a_broken_manifest() -> None:
    deployment = of_kind(RENDERED["base"], "Deployment")["incidentflow-worker"]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memroy"] = "1Gi"
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, latest_version(), strict=True)


def test_every_overlay_is_rendered() -> None:
    assert {"overlays/self-hosted", "overlays/temporal-cloud"} <= set(OVERLAYS)


# -- what the processes are ----------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_the_topology(target: str) -> None:
    manifests = RENDERED[target]
    deployments = of_kind(manifests, "Deployment")
    assert set(deployments) == {"incidentflow-api", "incidentflow-worker"}
    (job,) = of_kind(manifests, "Job").values()
    assert [c["command"] for c in containers(job)] == [["incidentflow", "migrate"]]
    (worker,) = containers(deployments["incidentflow-worker"])
    assert worker["command"] == ["incidentflow", "worker"]
    (api,) = containers(deployments["incidentflow-api"])
    assert api["command"][:2] == ["incidentflow", "api"]


@pytest.mark.parametrize("target", TARGETS)
def test_images_are_pinned_to_the_project_version(target: str) -> None:
    for manifest in workloads(target):
        for container in containers(manifest):
            image = container["image"]
            assert not image.endswith(":latest") and (":" in image or "@sha256:" in image), image
            assert image.endswith(f":{PROJECT_VERSION}") or "@sha256:" in image, image


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_is_hardened_and_sized(target: str) -> None:
    for manifest in workloads(target):
        (pod,) = kz.pod_specs(manifest)
        name = manifest["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == IMAGE_UID, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod.get("automountServiceAccountToken") is False, name
        for container in containers(manifest):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            # a read-only root needs a writable /tmp (health file, Python's temp files)
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]], name
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert "memory" in resources["limits"], name


@pytest.mark.parametrize("target", TARGETS)
def test_deployments_have_probes_and_outlast_their_drain(target: str) -> None:
    for name, deployment in of_kind(RENDERED[target], "Deployment").items():
        (pod,) = kz.pod_specs(deployment)
        (container,) = containers(deployment)
        assert container.get("livenessProbe") and container.get("readinessProbe"), name
        env = env_of(RENDERED[target], container)
        drain = next(float(env[n]["value"]) for n in env if n.endswith("_SHUTDOWN_GRACE_SECONDS"))
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
        delay = float(pre_stop[1]) if pre_stop and pre_stop[0] == "sleep" else 0.0
        assert pod["terminationGracePeriodSeconds"] > drain + delay, name


@pytest.mark.parametrize("target", TARGETS)
def test_the_worker_probes_read_the_file_it_touches_as_compose_does(target: str) -> None:
    worker = of_kind(RENDERED[target], "Deployment")["incidentflow-worker"]
    (container,) = containers(worker)
    health_file = env_of(RENDERED[target], container)["WORKER_HEALTH_FILE"]["value"]
    compose_check = COMPOSE["services"]["worker"]["healthcheck"]["test"]
    assert compose_check[0] == "CMD"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        command = container[probe]["exec"]["command"]
        assert command == compose_check[1:], probe
        assert health_file in command[-1], probe


@pytest.mark.parametrize("target", TARGETS)
def test_the_worker_serves_metrics_on_the_port_it_declares(target: str) -> None:
    worker = of_kind(RENDERED[target], "Deployment")["incidentflow-worker"]
    (container,) = containers(worker)
    address = env_of(RENDERED[target], container)["WORKER_METRICS_ADDRESS"]["value"]
    host, _, port = address.rpartition(":")
    assert host == "0.0.0.0", "a pod's metrics must be reachable from outside the pod"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == int(port)
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == port


@pytest.mark.parametrize("target", TARGETS)
def test_the_api_probes_are_routes_the_api_serves_on_its_port(target: str) -> None:
    manifests = RENDERED[target]
    api = of_kind(manifests, "Deployment")["incidentflow-api"]
    (container,) = containers(api)
    routes = {getattr(route, "path", None) for route in ops_router.routes}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"/healthz", "/readyz"} <= routes
    port = int(container["command"][container["command"].index("--port") + 1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert ports[container[probe]["httpGet"]["port"]] == port
    service = of_kind(manifests, "Service")["incidentflow-api"]
    assert (
        service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    )
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)


@pytest.mark.parametrize("target", TARGETS)
def test_each_deployment_has_a_disruption_budget_it_can_meet(target: str) -> None:
    manifests = RENDERED[target]
    budgets = of_kind(manifests, "PodDisruptionBudget").values()
    for name, deployment in of_kind(manifests, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(matching) == 1, name
        assert 0 < matching[0]["spec"]["minAvailable"] < deployment["spec"]["replicas"], name


# -- settings and secrets ------------------------------------------------------------------


def test_the_secret_classification_sees_the_known_secrets() -> None:
    assert {
        "DATABASE_URL",
        "TEMPORAL_API_KEY",
        "INCIDENTFLOW_LINK_SECRET",
        "INCIDENTFLOW_SESSION_SECRET",
        "SMTP_PASSWORD",
    } <= SECRET_SETTINGS
    assert "TEMPORAL_TLS_KEY" not in SECRET_SETTINGS  # a file path; the file is the secret


@pytest.mark.parametrize("target", TARGETS)
def test_env_names_are_settings_or_policy_references(target: str) -> None:
    references = policy_references(policy_text(target))
    for manifest in workloads(target):
        for container in containers(manifest):
            unknown = (
                set(env_of(RENDERED[target], container))
                - SETTINGS_ENV
                - POLICY_NAMED_SECRETS
                - references
            )
            assert not unknown, f"{container['name']}: no setting reads {sorted(unknown)}"


@pytest.mark.parametrize("target", TARGETS)
def test_worker_and_api_get_the_slack_apps_secrets_when_the_secret_has_them(
    target: str,
) -> None:
    """Both need them (the API verifies Slack's requests, the worker posts as the bot); a
    cluster without the Slack app must still start, so the keys are optional."""
    assert POLICY_NAMED_SECRETS == {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"}
    for name in ("incidentflow-worker", "incidentflow-api"):
        (container,) = containers(of_kind(RENDERED[target], "Deployment")[name])
        env = env_of(RENDERED[target], container)
        for secret in POLICY_NAMED_SECRETS:
            ref = env[secret]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "incidentflow-secrets", "key": secret, "optional": True}


@pytest.mark.parametrize("target", TARGETS)
def test_no_pod_accepts_the_development_credentials(target: str) -> None:
    for manifest in workloads(target):
        for container in containers(manifest):
            assert "INCIDENTFLOW_ALLOW_DEV_CREDENTIALS" not in env_of(RENDERED[target], container)


@pytest.mark.parametrize("target", TARGETS)
def test_secrets_come_only_from_secrets(target: str) -> None:
    references = policy_references(policy_text(target))
    for manifest in workloads(target):
        for container in containers(manifest):
            for name, item in env_of(RENDERED[target], container).items():
                if name in SECRET_SETTINGS or name in references:
                    assert "value" not in item, f"{container['name']}: {name} is a literal"
                    assert "secretKeyRef" in item["valueFrom"], f"{container['name']}: {name}"


@pytest.mark.parametrize("target", TARGETS)
def test_the_policy_loads_with_its_references_from_the_pods_secrets(
    target: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Worker and API get every ``${NAME}`` the mounted policy uses, from a Secret, and the
    policy they mount loads once those are set."""
    text = policy_text(target)
    references = policy_references(text)
    assert references, "the template keeps its secrets out of the file"
    for name in ("incidentflow-worker", "incidentflow-api"):
        (container,) = containers(of_kind(RENDERED[target], "Deployment")[name])
        env = env_of(RENDERED[target], container)
        missing = references - set(env)
        assert not missing, f"{name}: the policy needs {sorted(missing)}"
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert str(Path(env["INCIDENTFLOW_POLICY"]["value"]).parent) in mounts, name
    values = {
        "INCIDENTFLOW_ADMIN_TOKEN_SHA256": "0" * 64,
        "INCIDENTFLOW_CHECKOUT_INTEGRATION_KEY": "k8s-test-integration-key",
        "INCIDENTFLOW_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/test",
    }
    for name in references:
        monkeypatch.setenv(name, values.get(name, "k8s-test-value"))
    path = tmp_path / "policy.yaml"
    path.write_text(text, "utf-8")
    policy = load_policy(path)
    assert policy.services[0].integration_keys == ["k8s-test-integration-key"]
    assert "${" not in yaml.safe_dump(policy.model_dump(mode="json"))


def test_the_secret_template_lists_every_key_the_pods_read() -> None:
    (template,) = kz.load_documents(K8S / "base" / "secrets.example.yaml")
    keys = set(template["stringData"])
    for manifests in RENDERED.values():
        for manifest in manifests:
            for container in containers(manifest):
                for item in env_of(manifests, container).values():
                    ref = item.get("valueFrom", {}).get("secretKeyRef")
                    if ref and ref["name"] == template["metadata"]["name"]:
                        assert ref["key"] in keys, ref["key"]
    assert all("REPLACE_ME" in value for value in template["stringData"].values())


def test_the_migrate_job_gets_only_the_database() -> None:
    (job,) = of_kind(RENDERED["base"], "Job").values()
    (container,) = containers(job)
    assert set(env_of(RENDERED["base"], container)) == {"DATABASE_URL"}


# -- the overlays --------------------------------------------------------------------------


def _temporal_env(target: str, deployment: str) -> dict[str, dict[str, Any]]:
    (container,) = containers(of_kind(RENDERED[target], "Deployment")[deployment])
    return env_of(RENDERED[target], container)


@pytest.mark.parametrize("deployment", ["incidentflow-worker", "incidentflow-api"])
def test_self_hosted_points_at_an_in_cluster_temporal(deployment: str) -> None:
    for target in ("base", "overlays/self-hosted"):
        env = _temporal_env(target, deployment)
        assert env["TEMPORAL_ADDRESS"]["value"].endswith(".svc.cluster.local:7233")
        assert not {"TEMPORAL_API_KEY", "TEMPORAL_TLS_CERT"} & set(env)


@pytest.mark.parametrize("deployment", ["incidentflow-worker", "incidentflow-api"])
def test_temporal_cloud_gets_its_api_key_from_a_secret(deployment: str) -> None:
    env = _temporal_env("overlays/temporal-cloud", deployment)
    assert env["TEMPORAL_ADDRESS"]["value"].endswith(".api.temporal.io:7233")
    assert "." in env["TEMPORAL_NAMESPACE"]["value"]  # <namespace>.<account-id>
    assert env["TEMPORAL_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "temporal-cloud"
    # the base's own secrets survive the patch (a list merge, not a replacement)
    assert "secretKeyRef" in env["DATABASE_URL"]["valueFrom"]


@pytest.mark.parametrize("deployment", ["incidentflow-worker", "incidentflow-api"])
def test_temporal_cloud_mtls_mounts_the_files_it_names(deployment: str) -> None:
    target = "overlays/temporal-cloud-mtls"
    (pod,) = kz.pod_specs(of_kind(RENDERED[target], "Deployment")[deployment])
    (container,) = pod["containers"]
    env = env_of(RENDERED[target], container)
    volumes = {v["name"]: v for v in pod["volumes"]}
    for setting in ("TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY"):
        path = Path(env[setting]["value"])
        (mount,) = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == path.parent]
        assert mount["readOnly"] is True
        assert volumes[mount["name"]]["secret"]["secretName"] == "temporal-cloud-mtls"
    assert env["TEMPORAL_ADDRESS"]["value"].endswith(".tmprl.cloud:7233")
    assert "/etc/incidentflow" in {m["mountPath"] for m in container["volumeMounts"]}


# -- the renderer itself -------------------------------------------------------------------


def test_the_renderer_refuses_what_it_does_not_understand(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [../base]\nreplicas: []\n")
    with pytest.raises(kz.KustomizeError, match="replicas"):
        kz.render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        f"resources: [{K8S / 'base'}]\npatches: [{{path: p.yaml}}]\n"
    )
    (tmp_path / "p.yaml").write_text("kind: Deployment\nmetadata: {name: nobody}\n")
    with pytest.raises(kz.KustomizeError, match="no Deployment nobody"):
        kz.render(tmp_path)
    (tmp_path / "p.yaml").write_text("kind: Job\nmetadata: {name: a}\n---\nkind: Job\n")
    with pytest.raises(kz.KustomizeError, match="one patch per file"):
        kz.render(tmp_path)
