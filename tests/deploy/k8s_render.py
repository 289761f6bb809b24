"""deploy/k8s as `kubectl apply -k` would send it, without kustomize: the files listed under
`resources`, the `configMapGenerator` ConfigMaps (without the content-hash suffix), and the
kustomization's namespace on every namespaced object. That is all our kustomization uses;
anything else in it fails loudly here rather than being silently ignored."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"
K8S_DIR = DEPLOY_DIR / "k8s"

Doc = dict[str, Any]

SUPPORTED_KEYS = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator"}
CLUSTER_SCOPED_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "StorageClass"}


def load_yaml_docs(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kustomization(k8s_dir: Path = K8S_DIR) -> Doc:
    doc: Doc = yaml.safe_load((k8s_dir / "kustomization.yaml").read_text())
    unsupported = set(doc) - SUPPORTED_KEYS
    assert not unsupported, f"kustomization.yaml uses {unsupported}: teach tests/deploy/k8s_render.py"
    return doc


def _generated_config_map(spec: Doc, base: Path) -> Doc:
    data: dict[str, str] = {}
    for entry in spec.get("files", []):
        key, _, path = entry.rpartition("=") if "=" in entry else ("", "", entry)
        data[key or Path(path).name] = (base / path).read_text()
    for literal in spec.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    metadata: Doc = {"name": spec["name"]}
    labels = spec.get("options", {}).get("labels")
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def render(k8s_dir: Path = K8S_DIR) -> list[Doc]:
    kust = kustomization(k8s_dir)
    docs: list[Doc] = []
    for resource in kust.get("resources", []):
        path = k8s_dir / resource
        assert path.is_file(), f"kustomization.yaml lists {resource}, which is not a file"
        docs.extend(load_yaml_docs(path))
    docs.extend(_generated_config_map(spec, k8s_dir) for spec in kust.get("configMapGenerator", []))
    namespace = kust.get("namespace")
    if namespace:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED_KINDS:
                doc.setdefault("metadata", {})["namespace"] = namespace
    return docs


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Doc) -> list[Doc]:
    found: list[Doc] = pod_spec(workload)["containers"]
    return found


def pod_labels(workload: Doc) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


@dataclass(frozen=True)
class SecretRef:
    secret: str
    key: str
    optional: bool


def secret_refs(container: Doc) -> Iterator[tuple[str, SecretRef]]:
    """(env var name, secret key reference) of a container; envFrom Secrets are not used here."""
    assert not any("secretRef" in source for source in container.get("envFrom", [])), (
        "envFrom a Secret hands a service every key: reference keys one by one"
    )
    for env in container.get("env", []):
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            yield env["name"], SecretRef(ref["name"], ref["key"], bool(ref.get("optional", False)))


def config_map_refs(container: Doc) -> list[str]:
    return [
        source["configMapRef"]["name"] for source in container.get("envFrom", []) if "configMapRef" in source
    ]


_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in env values (unknown references stay as they are)."""
    return _REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), value)


def container_env(
    container: Doc, config_maps: dict[str, dict[str, str]], secrets: dict[str, str]
) -> dict[str, str]:
    """The environment a container gets, as the kubelet builds it: envFrom ConfigMaps first,
    then `env` in order with $(VAR) references expanded; secret values from `secrets`
    (by key) when given, else left out."""
    env: dict[str, str] = {}
    for name in config_map_refs(container):
        env.update(config_maps[name])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = expand(str(entry["value"]), env)
            continue
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref["key"] in secrets:
            env[entry["name"]] = secrets[ref["key"]]
    return env


def resolve_port(container: Doc, port: int | str) -> int:
    if isinstance(port, int):
        return port
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            number: int = declared["containerPort"]
            return number
    raise AssertionError(f"container {container['name']} has no port named {port}")


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a set of labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, operator, values = expr["key"], expr["operator"], expr.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True
