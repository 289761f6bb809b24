"""JetStream KV operations per alert and per reply, from the product's own counter.

`oncall up` runs as a user runs it (subprocess, embedded NATS, all five services) with fake backends
on loopback (logs, Prometheus, GitHub, a scripted model, Jira) and the console channel (no Twilio), as
bench/pipeline.py does. Each phase is measured as the change of `oncall_kv_operations_total{bucket,op}`
on /metrics from before it starts until the counter has stopped moving (the asynchronous work the
phase causes, e.g. the diagnoser recording the created ticket, is included):

1. `--other-open N` other incidents are opened first (not measured), so that the replies have N + 1
   open incidents to choose from;
2. alert: one webhook POSTed, until its diagnosis is printed;
3. reply "status" through `oncall reply` (no incident named: the newest open one);
4. reply "create jira task and assign to ravi" through `oncall reply`, until the ticket is confirmed;
5. resolution: the group's resolved webhook POSTed, until the resolution is printed.

    .venv/bin/python -m bench.kv_ops [--other-open 0]
"""

import argparse
import copy
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.common import ON_CALL, TOKEN, demo_backends, model_settings
from services.runtime import demo
from tests.fakes import FakeJira, FakeOpenAI, tool_call
from tests.support.processes import OncallProcess, oncall_up, run_oncall

RAVI = {"accountId": "712020:ravi-0001", "displayName": "Ravi Kumar", "active": True}
METRIC = "oncall_kv_operations"  # the parser drops `_total`
QUIET_SECONDS = 1.0  # the counter unchanged this long: the phase's work is done
PHASE_TIMEOUT = 60.0

Ops = Counter[tuple[str, str]]


def scripted_model(request: dict[str, Any]) -> dict[str, Any]:
    """Diagnoses with one send_diagnosis; on a human turn asks for the ticket or the error rate."""
    offered = {t["function"]["name"] for t in request.get("tools", [])}
    messages = request["messages"]
    if "create_jira_ticket" not in offered:
        return {
            "tool_calls": [
                tool_call(
                    "send_diagnosis",
                    {
                        "root_cause": "TypeError at inventory/inventory_service.py:47",
                        "affected_file": demo.DEMO_BUGGY_FILE,
                        "line": demo.DEMO_BUGGY_LINE,
                        "evidence": ["TypeError"],
                        "priority": "P1",
                        "suggested_fix": "check for None",
                        "next_steps": ["fix"],
                        "confidence": 0.9,
                    },
                )
            ]
        }
    if messages[-1]["role"] == "tool":
        return {"content": "Done."}
    said = messages[-1]["content"].lower()
    if "jira" in said:
        return {"tool_calls": [tool_call("create_jira_ticket", {"assignee": "ravi"})]}
    return {"tool_calls": [tool_call("compute_error_rate", {"service": demo.DEMO_SERVICE})]}


def kv_ops(client: httpx.Client, url: str) -> Ops:
    ops: Ops = Counter()
    for family in text_string_to_metric_families(client.get(url + "/metrics").text):
        if family.name == METRIC:
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    ops[(sample.labels["bucket"], sample.labels["op"])] += int(sample.value)
    return ops


def settled(client: httpx.Client, url: str, before: Ops) -> Ops:
    """The counter once it has not moved for QUIET_SECONDS, minus `before`."""
    last, since = kv_ops(client, url), time.monotonic()
    deadline = since + PHASE_TIMEOUT
    while time.monotonic() - since < QUIET_SECONDS and time.monotonic() < deadline:
        time.sleep(0.1)
        now = kv_ops(client, url)
        if now != last:
            last, since = now, time.monotonic()
    return last - before


def webhook(now: datetime, run_id: str, status: str = "firing") -> dict[str, Any]:
    hook = demo.demo_alert_webhook(now, run_id=run_id)
    if status == "resolved":
        hook = copy.deepcopy(hook)
        hook["status"] = "resolved"
        for alert in hook["alerts"]:
            alert["status"] = "resolved"
            alert["endsAt"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return hook


def post(client: httpx.Client, url: str, hook: dict[str, Any]) -> str:
    response = client.post(url + "/alerts", json=hook, headers={"Authorization": f"Bearer {TOKEN}"})
    response.raise_for_status()
    return str(response.json()["incident_ids"][0])


def reply(oncall: OncallProcess, text: str) -> str:
    done = run_oncall(["reply", text, "--wait", "30"], oncall.settings, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"oncall reply {text!r} failed: {done.stdout}{done.stderr}")
    return done.stdout


def run(oncall: OncallProcess, client: httpx.Client, others: int, now: datetime) -> list[tuple[str, Ops]]:
    url = oncall.url
    for n in range(others):
        incident = post(client, url, webhook(now, f"other-{n}"))
        oncall.wait_for_output(f"#{incident}", timeout=PHASE_TIMEOUT)
    phases: list[tuple[str, Ops]] = []
    before = settled(client, url, Counter())
    idle = settled(client, url, before)
    phases.append(("idle (1 s, nothing happening)", idle))

    before = kv_ops(client, url)
    incident = post(client, url, webhook(now, "measured"))
    oncall.wait_for_output(f"Incident diagnosis* #{incident}", timeout=PHASE_TIMEOUT)
    phases.append(("alert: POST /alerts -> diagnosis printed", settled(client, url, before)))

    before = kv_ops(client, url)
    answer = reply(oncall, "status")
    assert "is diagnosed" in answer or "Done" in answer, answer
    phases.append(('reply "status"', settled(client, url, before)))

    before = kv_ops(client, url)
    answer = reply(oncall, "create jira task and assign to ravi")
    assert "OPS-1" in answer, answer
    phases.append(('reply "create jira task ..." -> OPS-1', settled(client, url, before)))

    before = kv_ops(client, url)
    post(client, url, webhook(now, "measured", status="resolved"))
    oncall.wait_for_output(f"Resolved* #{incident}", timeout=PHASE_TIMEOUT)
    phases.append(("resolution: resolved webhook -> printed", settled(client, url, before)))
    return phases


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--other-open", type=int, default=0, help="other open incidents opened first")
    args = parser.parse_args()

    now = datetime.now(UTC)
    log_lines = demo.demo_log_lines(now, seconds=300)
    with (
        demo_backends(log_lines) as backends,
        FakeOpenAI([scripted_model]) as model,
        FakeJira(users=[RAVI]) as jira,
    ):
        settings = backends.settings() | model_settings(model)
        settings |= {
            "JIRA_URL": jira.url,
            "JIRA_EMAIL": jira.email,
            "JIRA_API_TOKEN": jira.api_token,
            "JIRA_PROJECT_KEY": jira.project_key,
            "USER_WHATSAPP_NUMBER": ON_CALL,
        }
        with oncall_up(settings, backends.tmp) as oncall, httpx.Client(timeout=30) as client:
            phases = run(oncall, client, args.other_open, now)
    print(f"{'phase':<44} {'KV ops':>6}   by bucket/op")
    for label, ops in phases:
        detail = ", ".join(
            f"{bucket.removeprefix('oncall_')}.{op} {n}" for (bucket, op), n in sorted(ops.items())
        )
        print(f"{label:<44} {ops.total():>6}   {detail}")
    print(
        f"(other open incidents: {args.other_open}; console channel, 1 on-call number, scripted model, "
        "fake logs/Prometheus/GitHub/Jira; one count per KV call)"
    )


if __name__ == "__main__":
    main()
