"""The agent watches itself: the rules are valid Prometheus rules about metrics the agent exports."""

import re
from pathlib import Path

import yaml
from support.binaries import require_binary
from support.processes import run_process

from services.runtime import metrics
from services.runtime.service import load_service, service_names

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RULES = MONITORING / "oncall-rules.yml"


def test_promtool_accepts_the_rules() -> None:
    checked = run_process([require_binary("promtool"), "check", "rules", str(RULES)], timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_operator_copy_has_the_same_groups() -> None:
    operator = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert operator["kind"] == "PrometheusRule"
    assert operator["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_every_agent_metric_in_a_rule_is_exported() -> None:
    # Each service registers its own metrics in the process's registry when it is loaded.
    for name in service_names():
        load_service(name)
    # A labelled counter has no sample before its first increment: its name is the family's + _total.
    families = list(metrics.REGISTRY.collect())
    exported = {f.name + ("_total" if f.type == "counter" else "") for f in families}
    used = set(re.findall(r"\boncall_[a-z_]+", RULES.read_text()))
    assert used and used <= exported, used - exported


def test_the_pod_monitor_selects_the_agent_pods_port() -> None:
    monitor = yaml.safe_load((MONITORING / "podmonitor.yaml").read_text())
    tools = next(yaml.safe_load_all((MONITORING.parent / "k8s" / "apps" / "tools.yaml").read_text()))
    pod = tools["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports
