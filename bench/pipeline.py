"""Benchmark of the whole pipeline: POST /alerts -> ... -> the Twilio API call.

`oncall up` runs as a user runs it (subprocess, embedded NATS, all five services), with an instant
scripted model (one call: send_diagnosis) and instant tools backends (logs, Prometheus, GitHub),
all fakes on loopback from tests/fakes. Incidents are posted one after another (each a new group)
and each one's latency is measured from the POST to the moment the fake Twilio received its
WhatsApp message. Also printed: model calls per diagnosis, and the prompt tokens the model got
compared with the raw logs the seed sent (tokens approximated as 4 characters each, for both).

    .venv/bin/python -m bench.pipeline [--incidents 200]

With `--model-url` the model is a real OpenAI-compatible server instead (issue 13: the local
1.5B in llama-server), given the settings the README's "Run with a local model" gives; then each
latency is to the model's diagnosis on WhatsApp, and the rules' "still investigating" first look
is timed too:

    .venv/bin/python -m bench.pipeline --model-url http://127.0.0.1:8081/v1 --incidents 5
"""

import argparse
import copy
import json
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.common import (
    ON_CALL,
    TOKEN,
    TWILIO_SENDER,
    DemoBackends,
    demo_backends,
    model_settings,
    percentile,
    whatsapp_settings,
)
from services.runtime import demo
from tests.fakes import FakeOpenAI, FakeTwilio, tool_call
from tests.support.processes import oncall_up


def conclude(_: dict[str, Any]) -> dict[str, Any]:
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=200)
    parser.add_argument("--log-seconds", type=int, default=300, help="demo log tail length (~2 lines/s)")
    parser.add_argument("--model-url", help="a real OpenAI-compatible server (base URL ending in /v1)")
    parser.add_argument("--model-name", default="local", help="with --model-url: the model's name")
    args = parser.parse_args()
    if args.model_url:
        run_with_model(args)
        return

    now = datetime.now(UTC)
    log_lines = demo.demo_log_lines(now, seconds=args.log_seconds)
    with demo_backends(log_lines) as backends, FakeTwilio() as twilio, FakeOpenAI([conclude]) as model:
        settings = backends.settings() | whatsapp_settings(twilio) | model_settings(model)
        with oncall_up(settings, backends.tmp) as oncall, httpx.Client(timeout=30) as client:
            latencies = run(client, oncall.url, twilio, args.incidents, now)
        calls = len(model.chat_requests)
        prompt_tokens = [len(json.dumps(r["messages"])) // 4 for r in model.chat_requests]
        with httpx.Client(timeout=30) as client:
            floor = backend_floor(client, backends, model, twilio)
    raw_tokens = len(json.dumps(log_lines)) // 4
    prompt = statistics.mean(prompt_tokens)
    rows = [
        ("POST /alerts -> Twilio API call, p50", f"{statistics.median(latencies) * 1000:.1f} ms", "<= 50 ms"),
        ("POST /alerts -> Twilio API call, p99", f"{percentile(latencies, 0.99) * 1000:.1f} ms", "<= 200 ms"),
        ("limit: the backends' round trips of one incident", f"{floor * 1000:.1f} ms", "(one after another)"),
        ("p50 / limit", f"{statistics.median(latencies) / floor:.1f}x", ""),
        ("model calls per diagnosis", f"{calls / args.incidents:.2f}", "<= 2"),
        ("prompt tokens per diagnosis (evidence, compressed)", f"{prompt:.0f}", ""),
        ("tokens of the raw logs the seed sent", f"{raw_tokens}", f"({len(log_lines)} lines)"),
        ("reduction", f"{raw_tokens / prompt:.1f}x", ""),
    ]
    print(f"{'measure':<52} {'value':>12}   target")
    for label, value, target in rows:
        print(f"{label:<52} {value:>12}   {target}")
    print(
        f"(incidents={args.incidents}, one after another, instant fakes, 1 on-call number, "
        f"{len(log_lines)} log lines)"
    )


# Samples of the backends' round trips, each the median of this many.
FLOOR_SAMPLES = 20


def backend_floor(
    client: httpx.Client, backends: DemoBackends, model: FakeOpenAI, twilio: FakeTwilio
) -> float:
    """The physical limit of one incident (issue 14, item 6): the round trips it makes to its
    backends, straight from here with nothing of ours in between, added up: the log tail, the
    two Prometheus queries, the code from GitHub, one model call, one Twilio message."""
    logs_url, prom_url, github = backends.logs.url, backends.prometheus.url, backends.github
    calls = {
        "logs": lambda: client.get(f"{logs_url}/logs/tail", params={"seconds": 300, "limit": 2000}),
        "errors": lambda: client.get(f"{prom_url}/api/v1/query", params={"query": "errors"}),
        "requests": lambda: client.get(f"{prom_url}/api/v1/query", params={"query": "requests"}),
        "code": lambda: client.get(
            f"{github.url}/repos/acme/inventory/contents/{demo.DEMO_BUGGY_FILE}",
            params={"ref": "main"},
            headers={"Authorization": f"Bearer {github.token}"},
        ),
        "model": lambda: client.post(
            f"{model.url}/v1/chat/completions",
            json={"model": "bench", "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {model.api_key}"},
        ),
        "twilio": lambda: client.post(
            f"{twilio.url}/2010-04-01/Accounts/{twilio.account_sid}/Messages.json",
            data={"To": f"whatsapp:{ON_CALL}", "From": f"whatsapp:{TWILIO_SENDER}", "Body": "floor"},
            auth=(twilio.account_sid, twilio.auth_token),
        ),
    }
    total = 0.0
    for call in calls.values():
        samples = []
        for _ in range(FLOOR_SAMPLES):
            started = time.perf_counter()
            call()
            samples.append(time.perf_counter() - started)
        total += statistics.median(samples)
    return total


def post_incident(client: httpx.Client, url: str, template: dict[str, Any], n: int) -> tuple[str, float]:
    """Posts the demo alert as a new group; (its incident id, when it was sent)."""
    hook = copy.deepcopy(template)
    hook["groupKey"] = f'{{}}:{{alertname="HighErrorRate", service="inventory-{n}"}}'
    for alert in hook["alerts"]:
        alert["fingerprint"] = f"{n:016x}"
    sent = time.monotonic()
    response = client.post(url + "/alerts", json=hook, headers={"Authorization": f"Bearer {TOKEN}"})
    return response.json()["incident_ids"][0], sent


def run(client: httpx.Client, url: str, twilio: FakeTwilio, incidents: int, now: datetime) -> list[float]:
    template = demo.demo_alert_webhook(now)
    latencies = []
    for n in range(incidents):
        incident, sent = post_incident(client, url, template, n)
        tag = f"#{incident}"

        def arrived_for(t: FakeTwilio, tag: str = tag) -> bool:
            return any(tag in m["Body"] for m in t.messages)

        twilio.wait_for(arrived_for, timeout=30)
        arrived = next(r.started_at for r in twilio.requests if f"%23{incident}" in r.body.decode())
        latencies.append(arrived - sent)
    return latencies


# What the README's "Run with a local model" tells a user of a slow CPU server to set.
LOCAL_MODEL_SETTINGS = {
    "ONCALL_MODEL_CONTEXT_TOKENS": "8192",
    "ONCALL_OPENAI_TIMEOUT_SECONDS": "600",
    "ONCALL_MODEL_BUDGET_SECONDS": "900",
    "ONCALL_MODEL_MAX_OUTPUT_TOKENS": "512",
    "ONCALL_MAX_ROUNDS": "1",
    "ONCALL_MAX_CONCURRENT_DIAGNOSES": "1",
}
MODEL_WAIT_SECONDS = 1200.0


def run_with_model(args: argparse.Namespace) -> None:
    """POST /alerts -> the model's diagnosis on WhatsApp, one incident after another."""
    now = datetime.now(UTC)
    log_lines = demo.demo_log_lines(now, seconds=args.log_seconds)
    template = demo.demo_alert_webhook(now)
    rows: list[tuple[str, float, float, bool]] = []
    with demo_backends(log_lines) as backends, FakeTwilio() as twilio:
        settings = backends.settings() | whatsapp_settings(twilio) | LOCAL_MODEL_SETTINGS
        settings |= {"OPENAI_API_KEY": "local", "OPENAI_BASE_URL": args.model_url}
        settings["OPENAI_MODEL"] = args.model_name
        with oncall_up(settings, backends.tmp) as oncall, httpx.Client(timeout=30) as client:
            for n in range(args.incidents):
                incident, sent = post_incident(client, oncall.url, template, n)
                tag = f"#{incident}"

                def by_model(t: FakeTwilio, tag: str = tag) -> list[dict[str, Any]]:
                    return [m for m in t.messages if tag in m["Body"] and "by the model" in m["Body"]]

                def diagnosed(t: FakeTwilio, by_model: Any = by_model) -> bool:
                    return bool(by_model(t))

                twilio.wait_for(diagnosed, timeout=MODEL_WAIT_SECONDS)
                sent_at = [r.started_at for r in twilio.requests if f"%23{incident}" in r.body.decode()]
                body = by_model(twilio)[0]["Body"]
                located = f"{demo.DEMO_BUGGY_FILE}:{demo.DEMO_BUGGY_LINE}" in body
                rows.append((incident, sent_at[0] - sent, sent_at[-1] - sent, located))
                print(
                    f"  #{incident}: first look {sent_at[0] - sent:.1f} s, the model's diagnosis "
                    f"{sent_at[-1] - sent:.1f} s, names {demo.DEMO_BUGGY_FILE}:{demo.DEMO_BUGGY_LINE}: "
                    f"{'yes' if located else 'NO'}",
                    flush=True,
                )
    model_times = [row[2] for row in rows]
    print(f"model {args.model_name} at {args.model_url}, {len(rows)} incidents one after another:")
    print(
        f"  POST /alerts -> the model's diagnosis on WhatsApp: median {statistics.median(model_times):.1f} s"
    )
    print(f"  min {min(model_times):.1f} s, max {max(model_times):.1f} s")
    print(f"  POST /alerts -> the rules' first look: median {statistics.median(r[1] for r in rows):.1f} s")
    print(f"  the buggy file and line named: {sum(r[3] for r in rows)}/{len(rows)}")


if __name__ == "__main__":
    main()
