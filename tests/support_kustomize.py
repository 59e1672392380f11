"""A small kustomize for the tests: renders deploy/kubernetes/ without the kustomize binary.

It understands exactly the features our kustomizations use (``resources`` files and
directories, ``namespace``, ``labels``, ``images``, ``configMapGenerator`` and
``secretGenerator`` with ``literals``/``files``/``envs`` and ``behavior``, strategic-merge
``patches`` by ``path``, one document per file as kustomize requires) and fails on anything
else, so a kustomization using a feature it does not know cannot pass unchecked. Generated
names carry no content-hash suffix (real kustomize adds one and rewrites the references);
everything else matches ``kubectl kustomize``.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]

KNOWN_KEYS = frozenset(
    {
        "apiVersion",
        "kind",
        "resources",
        "namespace",
        "labels",
        "images",
        "configMapGenerator",
        "secretGenerator",
        "patches",
    }
)
#: cluster-scoped kinds we use: the namespace transformer leaves them alone
CLUSTER_SCOPED = frozenset({"Namespace"})
#: strategic-merge keys of the lists our patches touch (the Kubernetes API's patchMergeKey)
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}


class KustomizeError(Exception):
    """The kustomization uses something this renderer (or kustomize) would reject."""


def load_documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc]


def render(directory: Path) -> list[Manifest]:
    """The manifests ``kubectl kustomize <directory>`` would print (see the module doc)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text("utf-8"))
    unknown = set(kustomization) - KNOWN_KEYS
    if unknown:
        raise KustomizeError(f"{directory}: unsupported kustomization keys {sorted(unknown)}")
    manifests: list[Manifest] = []
    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            manifests.extend(render(target))
        elif target.is_file():
            manifests.extend(load_documents(target))
        else:
            raise KustomizeError(f"{directory}: resource {entry} does not exist")
    for generator in kustomization.get("configMapGenerator", []):
        _generate(manifests, directory, generator, "ConfigMap")
    for generator in kustomization.get("secretGenerator", []):
        _generate(manifests, directory, generator, "Secret")
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise KustomizeError(f"{directory}: only `patches: - path:` is supported: {patch}")
        documents = load_documents(directory / patch["path"])
        if len(documents) != 1:
            # kustomize: "unable to parse SM or JSON patch" (kubernetes-sigs/kustomize#3929)
            raise KustomizeError(f"{directory}/{patch['path']}: one patch per file")
        for document in documents:
            target = _find(manifests, document["kind"], document["metadata"]["name"])
            if target is None:
                raise KustomizeError(
                    f"{directory}/{patch['path']}: no {document['kind']} "
                    f"{document['metadata']['name']} to patch"
                )
            merged = _merge(target, document)
            manifests[manifests.index(target)] = merged
    if "namespace" in kustomization:
        for manifest in manifests:
            if manifest["kind"] not in CLUSTER_SCOPED:
                manifest["metadata"]["namespace"] = kustomization["namespace"]
    for label_set in kustomization.get("labels", []):
        if label_set.get("includeSelectors") or label_set.get("includeTemplates"):
            raise KustomizeError("labels: only metadata labels are supported")
        for manifest in manifests:
            manifest["metadata"].setdefault("labels", {}).update(label_set["pairs"])
    for image in kustomization.get("images", []):
        _set_image(manifests, image)
    return manifests


def _find(manifests: list[Manifest], kind: str, name: str) -> Manifest | None:
    for manifest in manifests:
        if manifest["kind"] == kind and manifest["metadata"]["name"] == name:
            return manifest
    return None


def _generate(
    manifests: list[Manifest], directory: Path, generator: dict[str, Any], kind: str
) -> None:
    unknown = set(generator) - {"name", "behavior", "literals", "files", "envs"}
    if unknown:
        raise KustomizeError(f"{directory}: unsupported generator keys {sorted(unknown)}")
    data: dict[str, str] = {}
    for literal in generator.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    for entry in generator.get("files", []):
        key, _, source = entry.rpartition("=")
        data[key or Path(source).name] = (directory / source).read_text("utf-8")
    for env_file in generator.get("envs", []):
        for line in (directory / env_file).read_text("utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                data[key.strip()] = value
    behavior = generator.get("behavior", "create")
    existing = _find(manifests, kind, generator["name"])
    if behavior == "create":
        if existing is not None:
            raise KustomizeError(f"{directory}: {kind} {generator['name']} exists; use merge")
        existing = {"apiVersion": "v1", "kind": kind, "metadata": {"name": generator["name"]}}
        if kind == "Secret":
            existing["type"] = "Opaque"
        manifests.append(existing)
    elif existing is None:
        raise KustomizeError(f"{directory}: no {kind} {generator['name']} to {behavior}")
    decoded = _decoded(existing) if behavior == "merge" else {}
    decoded.update(data)
    if kind == "Secret":
        existing["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in decoded.items()}
    else:
        existing["data"] = decoded


def _decoded(manifest: Manifest) -> dict[str, str]:
    data = dict(manifest.get("data") or {})
    if manifest["kind"] == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in data.items()}
    return data


def generated_data(manifest: Manifest) -> dict[str, str]:
    """A rendered ConfigMap's or Secret's data, decoded."""
    return _decoded(manifest)


def _merge(base: Any, patch: Any, key: str = "") -> Any:
    """Strategic merge: maps merge, lists with a merge key merge by it, others replace."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for name, value in patch.items():
            merged[name] = _merge(base[name], value, name) if name in base else value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and key in MERGE_KEYS:
        merge_key = MERGE_KEYS[key]
        merged_list = copy.deepcopy(base)
        for item in patch:
            match = next(
                (i for i, b in enumerate(merged_list) if b[merge_key] == item[merge_key]), None
            )
            if match is None:
                merged_list.append(item)
            else:
                merged_list[match] = _merge(merged_list[match], item)
        return merged_list
    return copy.deepcopy(patch)


def pod_specs(manifest: Manifest) -> list[dict[str, Any]]:
    """The pod spec of a Deployment or Job (none for other kinds)."""
    if manifest["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
        return [manifest["spec"]["template"]["spec"]]
    return []


def _set_image(manifests: list[Manifest], image: dict[str, Any]) -> None:
    for manifest in manifests:
        for pod in pod_specs(manifest):
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                name, _, tag = container["image"].partition(":")
                if name != image["name"]:
                    continue
                new_name = image.get("newName", name)
                if "digest" in image:
                    container["image"] = f"{new_name}@{image['digest']}"
                else:
                    container["image"] = f"{new_name}:{image.get('newTag', tag)}"
