"""deploy/k8s, offline: every object valid against the Kubernetes OpenAPI schemas of a pinned
version, and the invariants an SRE checks in review (probes, limits, security context, pinned
images, replicas, settings and secrets all provided, network flows, the public surface)."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import kubernetes_validate
import pytest
import yaml
from code_usage import all_services, all_settings, settings_classes, settings_read_by
from k8s_render import (
    DEPLOY_DIR,
    K8S_DIR,
    REPO_ROOT,
    Doc,
    container_env,
    containers,
    kustomization,
    load_yaml_docs,
    named,
    of_kind,
    pod_labels,
    pod_spec,
    render,
    resolve_port,
    secret_refs,
    selects,
)
from nats_permissions import parse_nats_conf, password_variable
from support.binaries import require_binary
from support.processes import run_process

from services.runtime.broker import make_broker
from services.runtime.bus import Bus
from services.runtime.service import load_service
from services.runtime.settings import ProcessSettings

KUBERNETES_VERSION = "1.30.0"
NAMESPACE = "oncall"
APP_UID = 10001
HTTP_PORT = 8080
# Custom resources: no OpenAPI schema in kubernetes-validate; their shape is checked by hand.
CUSTOM_API_VERSIONS = {"monitoring.coreos.com/v1alpha1"}
# Files under deploy/k8s that are deliberately not resources of the kustomization.
NOT_RESOURCES = {"kustomization.yaml", "secret.example.yaml", "nats/bus-permissions.yaml"}

# Settings the manifests leave unset on purpose: each has a default that is right on Kubernetes.
OPTIONAL_SETTINGS = {
    "CODE_DIR": "the code comes from GitHub; a local checkout would need a volume",
    "INGEST_BASIC_USER": "Alertmanager authenticates with the bearer token INGEST_TOKEN",
    "INGEST_BASIC_PASSWORD": "Alertmanager authenticates with the bearer token INGEST_TOKEN",
    "ONCALL_TOOL_MAX_TOKENS": "tools' output cap per result; the default fits the token budget",
    "ONCALL_PROM_ERRORS_QUERY": "the seed's metric names by default; set when yours differ",
    "ONCALL_PROM_REQUESTS_QUERY": "the seed's metric names by default; set when yours differ",
}
# ConfigMap keys that are not settings of the product.
NOT_A_SETTING_IN_CONFIG = {"NATS_ADDRESS": "composes NATS_URL with each service's NATS user"}

DOCS = render()
DEPLOYMENTS = of_kind(DOCS, "Deployment")
WORKLOADS = DEPLOYMENTS + of_kind(DOCS, "StatefulSet")
SECRET_EXAMPLE = load_yaml_docs(K8S_DIR / "secret.example.yaml")
CONFIG = named(DOCS, "ConfigMap", "oncall-config")["data"]


def deployment_for(service: str) -> Doc:
    found = [d for d in DEPLOYMENTS if containers(d)[0].get("args", [None, None])[1] == service]
    assert len(found) == 1, f"expected one Deployment running {service}, found {len(found)}"
    return found[0]


def secret_example_keys() -> dict[str, set[str]]:
    return {doc["metadata"]["name"]: set(doc.get("stringData", {})) for doc in SECRET_EXAMPLE}


def ids(docs: list[Doc]) -> list[str]:
    return [f"{d['kind']}/{d['metadata']['name']}" for d in docs]


# --- the kustomization -----------------------------------------------------------------------


def test_every_manifest_file_is_a_resource_of_the_kustomization() -> None:
    listed = set(kustomization()["resources"])
    generated = {f for spec in kustomization().get("configMapGenerator", []) for f in spec.get("files", [])}
    on_disk = {str(p.relative_to(K8S_DIR)) for p in K8S_DIR.rglob("*.yaml")}
    assert on_disk - listed - NOT_RESOURCES == set(), "a manifest nobody applies"
    assert listed <= on_disk
    assert all((K8S_DIR / f).is_file() for f in generated)


def test_everything_lands_in_the_oncall_namespace() -> None:
    assert kustomization()["namespace"] == NAMESPACE
    assert named(DOCS, "Namespace", NAMESPACE)
    for doc in SECRET_EXAMPLE:  # applied by hand, so it must say where
        assert doc["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize("doc", DOCS + SECRET_EXAMPLE, ids=ids(DOCS + SECRET_EXAMPLE))
def test_valid_against_the_kubernetes_schema(doc: Doc) -> None:
    assert doc["apiVersion"] not in CUSTOM_API_VERSIONS
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_alertmanager_config_custom_resource_is_well_formed() -> None:
    (doc,) = load_yaml_docs(DEPLOY_DIR / "alertmanager" / "alertmanagerconfig.yaml")
    assert doc["apiVersion"] in CUSTOM_API_VERSIONS
    assert doc["kind"] == "AlertmanagerConfig"
    assert doc["metadata"]["name"]
    assert set(doc["spec"]) == {"route", "receivers"}
    # The schema's required fields of the parts we use (monitoring.coreos.com/v1alpha1).
    assert doc["spec"]["route"]["receiver"] == doc["spec"]["receivers"][0]["name"]
    webhook = doc["spec"]["receivers"][0]["webhookConfigs"][0]
    credentials = webhook["httpConfig"]["authorization"]["credentials"]
    assert set(credentials) == {"name", "key"}


# --- the five Deployments --------------------------------------------------------------------


@pytest.mark.parametrize("service", all_services())
def test_each_service_has_one_deployment_running_it(service: str) -> None:
    deployment = deployment_for(service)
    (container,) = containers(deployment)
    assert container["args"] == ["run", service]  # the image's ENTRYPOINT is `oncall`
    assert "command" not in container


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=ids(DEPLOYMENTS))
def test_probes_on_readyz_and_healthz(deployment: Doc) -> None:
    (container,) = containers(deployment)
    ready, live = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert ready["path"] == "/readyz"
    assert live["path"] == "/healthz"  # liveness must not depend on NATS
    assert resolve_port(container, ready["port"]) == HTTP_PORT
    assert resolve_port(container, live["port"]) == HTTP_PORT
    assert int(CONFIG["ONCALL_HTTP_PORT"]) == HTTP_PORT
    assert CONFIG["ONCALL_HTTP_HOST"] == "0.0.0.0"  # probes come from the node, not loopback


def _quantity(value: str | int) -> float:
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


@pytest.mark.parametrize("workload", WORKLOADS, ids=ids(WORKLOADS))
def test_requests_and_limits(workload: Doc) -> None:
    for container in containers(workload):
        resources = container["resources"]
        for kind in ("cpu", "memory"):
            request, limit = resources["requests"][kind], resources["limits"][kind]
            assert _quantity(request) <= _quantity(limit), f"{container['name']} {kind}"


@pytest.mark.parametrize("workload", WORKLOADS, ids=ids(WORKLOADS))
def test_security_context(workload: Doc) -> None:
    pod = pod_spec(workload)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    for container in pod["containers"]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["runAsNonRoot"] is True
        assert ctx["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=ids(DEPLOYMENTS))
def test_runs_as_the_image_user_with_a_writable_tmp(deployment: Doc) -> None:
    pod = pod_spec(deployment)
    assert pod["securityContext"]["runAsUser"] == APP_UID  # the Dockerfile's USER
    volumes = {v["name"]: v for v in pod["volumes"]}
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert CONFIG["ONCALL_DATA_DIR"].startswith("/tmp/")  # the host writes its state file there


def test_one_pinned_image_tagged_with_the_project_version() -> None:
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    images = {c["image"] for d in DEPLOYMENTS for c in containers(d)}
    assert images == {f"ghcr.io/oncall-agent/oncall:{version}"}


@pytest.mark.parametrize("workload", WORKLOADS, ids=ids(WORKLOADS))
def test_images_pinned_by_tag(workload: Doc) -> None:
    for container in containers(workload):
        name, _, tag = container["image"].rpartition(":")
        assert name and "/" not in tag, f"{container['image']} has no tag"
        assert tag != "latest"
        assert any(ch.isdigit() for ch in tag)


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=ids(DEPLOYMENTS))
def test_at_least_two_replicas(deployment: Doc) -> None:
    name = deployment["metadata"]["name"]
    autoscalers = [
        h for h in of_kind(DOCS, "HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == name
    ]
    if autoscalers:
        (hpa,) = autoscalers
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert hpa["spec"]["minReplicas"] >= 2
        # Owned by the HPA: a value in the manifest would be reset by every apply.
        assert "replicas" not in deployment["spec"]
    else:
        assert deployment["spec"]["replicas"] >= 2


def test_autoscalers_for_tools_and_diagnoser() -> None:
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(DOCS, "HorizontalPodAutoscaler")}
    assert targets == {
        deployment_for("tools")["metadata"]["name"],
        deployment_for("diagnoser")["metadata"]["name"],
    }


@pytest.mark.parametrize("workload", WORKLOADS, ids=ids(WORKLOADS))
def test_disruption_budget_for_every_workload(workload: Doc) -> None:
    budgets = [
        p
        for p in of_kind(DOCS, "PodDisruptionBudget")
        if selects(p["spec"]["selector"], pod_labels(workload))
    ]
    assert len(budgets) == 1
    assert budgets[0]["spec"]["maxUnavailable"] == 1


# --- settings and secrets --------------------------------------------------------------------


def _provided_settings() -> set[str]:
    provided = set(CONFIG)
    for deployment in DEPLOYMENTS:
        provided |= {env["name"] for c in containers(deployment) for env in c.get("env", [])}
    return provided


def test_every_setting_is_provided_or_deliberately_left_to_its_default() -> None:
    settings = set(all_settings())
    missing = settings - _provided_settings() - set(OPTIONAL_SETTINGS)
    assert not missing, f"settings neither in the manifests nor in OPTIONAL_SETTINGS: {sorted(missing)}"
    assert set(OPTIONAL_SETTINGS) <= settings, "OPTIONAL_SETTINGS names a setting that no longer exists"
    assert not set(OPTIONAL_SETTINGS) & _provided_settings(), (
        "an OPTIONAL_SETTINGS entry is provided after all"
    )


def test_config_map_holds_only_settings_and_no_secrets() -> None:
    settings = all_settings()
    unknown = set(CONFIG) - set(settings) - set(NOT_A_SETTING_IN_CONFIG)
    assert not unknown, f"not a setting (typo?): {sorted(unknown)}"
    secret_in_config = {key for key in CONFIG if key in settings and settings[key].secret}
    assert not secret_in_config


def test_config_map_values_parse_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value the services cannot parse (a phone number without +, a word for a number) would
    stop all five at start."""
    for key in list(all_settings()):
        monkeypatch.delenv(key, raising=False)
    for key, value in CONFIG.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("NATS_URL", "nats://user:password@nats:4222")
    for cls in settings_classes():
        cls()
    assert ProcessSettings().js_replicas == 3


@pytest.mark.parametrize("service", all_services())
def test_each_service_gets_the_secrets_it_reads_and_no_others(service: str) -> None:
    (container,) = containers(deployment_for(service))
    given = {name for name, ref in secret_refs(container) if ref.secret == "oncall-secrets"}
    secret_settings = {alias for alias, info in all_settings().items() if info.secret}
    secret_settings.add("TWILIO_ACCOUNT_SID")  # not a SecretStr, but an account credential
    needed = (settings_read_by(service) & secret_settings) - set(OPTIONAL_SETTINGS)
    assert needed == given


@pytest.mark.parametrize("service", all_services())
def test_nats_url_is_the_services_own_nats_user(service: str) -> None:
    (container,) = containers(deployment_for(service))
    refs = dict(secret_refs(container))
    assert refs["NATS_PASSWORD"].key == password_variable(service)
    assert refs["NATS_PASSWORD"].secret == "oncall-nats"
    assert refs["NATS_PASSWORD"].optional is False
    env = container_env(container, {"oncall-config": CONFIG}, {password_variable(service): "s3cret"})
    assert env["NATS_URL"] == f"nats://{service}:s3cret@nats:4222"
    # The address is the client Service of the NATS StatefulSet.
    assert urlparse(env["NATS_URL"]).hostname == named(DOCS, "Service", "nats")["metadata"]["name"]


def test_every_secret_key_referenced_exists_in_the_example_and_none_is_unused() -> None:
    example = secret_example_keys()
    referenced: dict[str, set[str]] = {name: set() for name in example}
    for workload in WORKLOADS:
        for container in containers(workload):
            for _, ref in secret_refs(container):
                assert ref.key in example.get(ref.secret, set()), f"{ref.secret}/{ref.key} missing"
                referenced[ref.secret].add(ref.key)
    assert referenced == example, "secret.example.yaml has keys nothing reads"


def test_secret_example_has_no_values() -> None:
    for doc in SECRET_EXAMPLE:
        assert "data" not in doc
        assert all(value == "" for value in doc["stringData"].values()), doc["metadata"]["name"]


def test_required_secrets_are_not_optional() -> None:
    """Pods do not start without their NATS password or the ingest token; the vendor
    credentials may be left out (the product then runs without that integration)."""
    required = {"INGEST_TOKEN"} | {password_variable(s) for s in all_services()}
    for deployment in DEPLOYMENTS:
        for _, ref in secret_refs(containers(deployment)[0]):
            assert ref.optional is (ref.key not in required), ref.key


# --- NATS --------------------------------------------------------------------------------------


NATS = named(DOCS, "StatefulSet", "nats")
NATS_CONFIG_MAP = named(DOCS, "ConfigMap", "nats-config")
NATS_CONF = parse_nats_conf(NATS_CONFIG_MAP["data"]["nats.conf"])


def test_nats_three_servers_with_persistent_jetstream() -> None:
    assert NATS["spec"]["replicas"] == 3 == int(CONFIG["ONCALL_JS_REPLICAS"])
    (claim,) = NATS["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    (container,) = containers(NATS)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == NATS_CONF["jetstream"]["store_dir"]
    assert NATS["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"


def test_nats_cluster_routes_name_the_three_pods() -> None:
    (container,) = containers(NATS)
    headless = named(DOCS, "Service", NATS["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    env = container_env(container, {}, {"NATS_ROUTE_PASSWORD": "r"})
    routes = NATS_CONF["cluster"]["routes"]
    assert len(routes) == NATS["spec"]["replicas"]
    cluster_port = int(NATS_CONF["cluster"]["listen"].rpartition(":")[2])
    hosts = set()
    for route in routes:
        url = urlparse(env[route.removeprefix("$")])
        assert (url.username, url.password, url.port) == (
            NATS_CONF["cluster"]["authorization"]["user"],
            "r",
            cluster_port,
        )
        hosts.add(url.hostname)
    name, service = NATS["metadata"]["name"], headless["metadata"]["name"]
    assert hosts == {f"{name}-{i}.{service}" for i in range(NATS["spec"]["replicas"])}


def test_nats_config_comes_from_the_generated_config_map() -> None:
    volumes = {v["name"]: v for v in pod_spec(NATS)["volumes"]}
    (container,) = containers(NATS)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    config_volume = next(name for name, v in volumes.items() if "configMap" in v)
    assert volumes[config_volume]["configMap"]["name"] == NATS_CONFIG_MAP["metadata"]["name"]
    assert container["command"] == ["nats-server", "--config", f"{mounts[config_volume]}/nats.conf"]
    assert set(NATS_CONFIG_MAP["data"]) == {"nats.conf", "auth.conf"}
    assert NATS_CONF["include"] == "./auth.conf"


def test_nats_pid_file_is_where_the_pre_stop_hook_signals() -> None:
    (container,) = containers(NATS)
    pid_file = NATS_CONF["pid_file"]
    assert container["lifecycle"]["preStop"]["exec"]["command"][-1] == f"ldm={pid_file}"
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    assert str(Path(pid_file).parent) in mounts  # writable although the root file system is not


def test_nats_max_payload_fits_the_largest_accepted_webhook() -> None:
    max_payload = NATS_CONF["max_payload"]
    assert max_payload.endswith("MB")
    assert int(max_payload.removesuffix("MB")) * 1024 * 1024 > int(CONFIG["ONCALL_INGEST_MAX_BYTES"])


# --- Services, Ingress ---------------------------------------------------------------------


def _routes(service: str) -> set[str]:
    broker = make_broker("nats://127.0.0.1:1", name="deploy-test")
    parts = load_service(service).configure().wire(Bus(broker))
    return {route.path for route in parts.routes}


@pytest.mark.parametrize("service", ["alert_ingest", "notifier"])
def test_http_services_have_a_service(service: str) -> None:
    deployment = deployment_for(service)
    (svc,) = [
        s
        for s in of_kind(DOCS, "Service")
        if selects({"matchLabels": s["spec"]["selector"]}, pod_labels(deployment))
    ]
    (port,) = svc["spec"]["ports"]
    assert resolve_port(containers(deployment)[0], port["targetPort"]) == HTTP_PORT
    assert _routes(service), f"{service} serves no routes of its own"


def _ingress_paths() -> list[tuple[str, str, Doc]]:
    (ingress,) = of_kind(DOCS, "Ingress")
    return [
        (rule["host"], path["path"], path)
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]


def _ingress_matches(path: str) -> bool:
    for _, prefix, spec in _ingress_paths():
        if spec["pathType"] == "Exact" and path == prefix:
            return True
        if spec["pathType"] == "Prefix" and (path == prefix or path.startswith(prefix.rstrip("/") + "/")):
            return True
    return False


def test_ingress_exposes_the_notifiers_webhooks_and_nothing_else() -> None:
    notifier_service = named(DOCS, "Service", "notifier")
    for _, _, spec in _ingress_paths():
        assert spec["backend"]["service"]["name"] == notifier_service["metadata"]["name"]
    for path in _routes("notifier"):
        assert _ingress_matches(path), f"Twilio cannot reach {path}"
    assert _ingress_matches("/webhook/twilio/status")  # delivery status callbacks
    for private in ("/alerts", "/metrics", "/healthz", "/readyz", "/", "/webhook/twilioX"):
        assert not _ingress_matches(private), private


def test_ingress_host_is_the_url_twilio_signs_with_tls() -> None:
    (ingress,) = of_kind(DOCS, "Ingress")
    public = urlparse(CONFIG["PUBLIC_BASE_URL"])
    assert public.scheme == "https"
    assert {host for host, _, _ in _ingress_paths()} == {public.hostname}
    assert any(public.hostname in tls["hosts"] and tls["secretName"] for tls in ingress["spec"]["tls"])


# --- NetworkPolicies -------------------------------------------------------------------------

POLICIES = of_kind(DOCS, "NetworkPolicy")
NAMESPACE_LABELS = {"kubernetes.io/metadata.name": NAMESPACE}


def _peer_matches(
    peer: Doc, labels: dict[str, str], namespace_labels: dict[str, str], ip: str | None
) -> bool:
    if "ipBlock" in peer:
        if ip is None:
            return False
        address = ipaddress.ip_address(ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if ip is not None:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif namespace_labels != NAMESPACE_LABELS:
        return False
    return selects(peer.get("podSelector", {}), labels)


def _allowed(
    direction: str,
    pod: dict[str, str],
    port: int,
    peer: dict[str, str] | None = None,
    peer_namespace: dict[str, str] = NAMESPACE_LABELS,
    ip: str | None = None,
) -> bool:
    """Whether the policies let `pod` receive (ingress) or send (egress) on `port`, with the
    peer given by labels (and its namespace's labels) or by IP."""
    key = "ingress" if direction == "Ingress" else "egress"
    side = "from" if key == "ingress" else "to"
    applying = [
        p
        for p in POLICIES
        if direction in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], pod)
    ]
    assert applying, f"no {direction} policy selects {pod}: default allow"
    for policy in applying:
        for rule in policy["spec"].get(key, []):
            ports = rule.get("ports")
            if ports and port not in {p["port"] for p in ports}:
                continue
            peers = rule.get(side)
            if not peers or any(_peer_matches(x, peer or {}, peer_namespace, ip) for x in peers):
                return True
    return False


SERVICE_PODS = {s: pod_labels(deployment_for(s)) for s in all_services()}
NATS_POD = pod_labels(NATS)
MONITORING = {"kubernetes.io/metadata.name": "monitoring"}
ALERTMANAGER = {"app.kubernetes.io/name": "alertmanager"}
PROMETHEUS = {"app.kubernetes.io/name": "prometheus"}
INGRESS_NGINX_NS = {"kubernetes.io/metadata.name": "ingress-nginx"}
INGRESS_NGINX = {"app.kubernetes.io/name": "ingress-nginx"}
KUBE_DNS = ({"k8s-app": "kube-dns"}, {"kubernetes.io/metadata.name": "kube-system"})
INTERNET = "140.82.112.3"  # api.github.com, for one


def test_default_deny() -> None:
    deny = [
        p
        for p in POLICIES
        if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") and not p["spec"].get("egress")
    ]
    assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    # Something nobody asked for stays closed.
    assert not _allowed("Ingress", SERVICE_PODS["diagnoser"], HTTP_PORT, {"app": "random"})
    assert not _allowed("Egress", SERVICE_PODS["alert_ingest"], 443, ip=INTERNET)


@pytest.mark.parametrize("pod", [*SERVICE_PODS.values(), NATS_POD], ids=[*SERVICE_PODS, "nats"])
def test_dns_for_everyone(pod: dict[str, str]) -> None:
    assert _allowed("Egress", pod, 53, *KUBE_DNS)


@pytest.mark.parametrize("service", all_services())
def test_services_reach_nats_and_prometheus_reaches_them(service: str) -> None:
    pod = SERVICE_PODS[service]
    assert _allowed("Egress", pod, 4222, NATS_POD)
    assert _allowed("Ingress", NATS_POD, 4222, pod)
    assert _allowed("Ingress", pod, HTTP_PORT, PROMETHEUS, MONITORING)


def test_nats_routes_between_the_servers_only() -> None:
    assert _allowed("Ingress", NATS_POD, 6222, NATS_POD)
    assert _allowed("Egress", NATS_POD, 6222, NATS_POD)
    assert not _allowed("Ingress", NATS_POD, 6222, SERVICE_PODS["tools"])


def test_alertmanager_to_alert_ingest_and_back_for_silences() -> None:
    ingest = SERVICE_PODS["alert_ingest"]
    assert _allowed("Ingress", ingest, HTTP_PORT, ALERTMANAGER, MONITORING)
    assert urlparse(CONFIG["ALERTMANAGER_URL"]).port == 9093
    assert _allowed("Egress", ingest, 9093, ALERTMANAGER, MONITORING)
    for other in ("tools", "diagnoser", "notifier", "ticketing"):
        assert not _allowed("Ingress", SERVICE_PODS[other], HTTP_PORT, ALERTMANAGER, MONITORING)


def test_ingress_controller_to_notifier_only() -> None:
    assert _allowed("Ingress", SERVICE_PODS["notifier"], HTTP_PORT, INGRESS_NGINX, INGRESS_NGINX_NS)
    assert not _allowed("Ingress", SERVICE_PODS["alert_ingest"], HTTP_PORT, INGRESS_NGINX, INGRESS_NGINX_NS)


def test_https_to_the_internet_for_the_services_that_call_out() -> None:
    for service in ("tools", "diagnoser", "notifier", "ticketing"):
        assert _allowed("Egress", SERVICE_PODS[service], 443, ip=INTERNET)
        # Not to private addresses nor the cloud metadata endpoint.
        assert not _allowed("Egress", SERVICE_PODS[service], 443, ip="10.1.2.3")
        assert not _allowed("Egress", SERVICE_PODS[service], 80, ip="169.254.169.254")
    assert _allowed("Egress", SERVICE_PODS["tools"], 9090, PROMETHEUS, MONITORING)
    assert urlparse(CONFIG["PROM_URL"]).port == 9090


# --- Alertmanager ----------------------------------------------------------------------------


def _receiver() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((DEPLOY_DIR / "alertmanager" / "receiver.yaml").read_text())
    return config


def test_alertmanager_receiver_points_at_alert_ingest() -> None:
    config = _receiver()
    route = config["route"]
    assert route["group_by"] == ["alertname", "service"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("30s", "5m", "4h")
    (receiver,) = config["receivers"]
    assert route["receiver"] == receiver["name"]
    (webhook,) = receiver["webhook_configs"]
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"]["type"] == "Bearer"
    assert webhook["http_config"]["authorization"]["credentials_file"]
    url = urlparse(webhook["url"])
    service = named(DOCS, "Service", "alert-ingest")
    assert url.hostname == f"{service['metadata']['name']}.{NAMESPACE}.svc"
    assert url.port == service["spec"]["ports"][0]["port"]
    assert url.path in _routes("alert_ingest")


def test_alertmanager_config_resource_says_the_same() -> None:
    (doc,) = load_yaml_docs(DEPLOY_DIR / "alertmanager" / "alertmanagerconfig.yaml")
    plain = _receiver()
    route, crd_route = plain["route"], doc["spec"]["route"]
    assert crd_route["groupBy"] == route["group_by"]
    assert (crd_route["groupWait"], crd_route["groupInterval"], crd_route["repeatInterval"]) == (
        route["group_wait"],
        route["group_interval"],
        route["repeat_interval"],
    )
    webhook = plain["receivers"][0]["webhook_configs"][0]
    crd_webhook = doc["spec"]["receivers"][0]["webhookConfigs"][0]
    assert crd_webhook["url"] == webhook["url"]
    assert crd_webhook["sendResolved"] is True
    assert crd_webhook["httpConfig"]["authorization"]["type"] == "Bearer"


def test_alertmanager_receiver_passes_amtool(tmp_path: Path) -> None:
    amtool = require_binary("amtool")
    result = run_process(
        [amtool, "check-config", str(DEPLOY_DIR / "alertmanager" / "receiver.yaml")], timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
