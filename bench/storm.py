"""Benchmark of an alert storm (issue 14, items 4 and 5): 10,000 Alertmanager notifications in 100
groups posted to `oncall up` as fast as it accepts them, then the drain.

The groups grow: each group's notifications carry its alerts so far, and every `--join-every`-th
notification of a group adds an alert (a new alert joining the incident); the rest are repeats.
`oncall up` runs as a user runs it, against the test suite's fakes on loopback: a model that takes
`--model-seconds` per call (one call: send_diagnosis), instant logs, Prometheus, GitHub, and
Twilio with two paged numbers.

Printed: accepted/s while posting; incidents (distinct incident ids in the answers), diagnoses
and WhatsApp messages per paged number (what was sent, from the fake Twilio), model calls and
the most in flight at once against ONCALL_MAX_CONCURRENT_DIAGNOSES (from the fake model's
request times), the time to drain, and the peak RSS of each process (the intake process, the
services' process, nats-server) against the issue's memory limits.

    .venv/bin/python -m bench.storm [--alerts 10000] [--groups 100]
"""

import argparse
import asyncio
import copy
import json
import random
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.common import TOKEN, demo_backends, model_settings, whatsapp_settings
from bench.ingest import HttpConnection, children, command_name, proc_status
from services.runtime import demo
from tests.fakes import FakeOpenAI, FakeTwilio, tool_call
from tests.support.processes import oncall_up

NUMBERS = ("+15551230001", "+15551230002")
MAX_CONCURRENT = 8  # ONCALL_MAX_CONCURRENT_DIAGNOSES, its default
SERVICE_LIMIT_MIB = 120.0  # each service alone (issue 14, item 5)
LOCAL_LIMIT_MIB = 250.0  # all of local mode
INCIDENT_TAG = re.compile(r"#[0-9a-f]{6}\b")


def diagnosis(_: dict[str, Any]) -> dict[str, Any]:
    arguments = {
        "root_cause": "TypeError in reserve()",
        "affected_file": demo.DEMO_BUGGY_FILE,
        "line": demo.DEMO_BUGGY_LINE,
        "evidence": ["TypeError"],
        "priority": "P2",
        "suggested_fix": "check for None",
        "next_steps": ["fix"],
        "confidence": 0.8,
    }
    return {"tool_calls": [tool_call("send_diagnosis", arguments)]}


def notifications(
    template: dict[str, Any], alerts: int, groups: int, join_every: int, seed: int
) -> list[bytes]:
    """`alerts` webhooks over `groups` groups in random order; a group's n-th notification carries
    1 + n // join_every alerts."""
    rng = random.Random(seed)
    order = [i % groups for i in range(alerts)]
    rng.shuffle(order)
    sent = [0] * groups
    bodies = []
    for group in order:
        hook = copy.deepcopy(template)
        hook["groupKey"] = f'{{}}:{{alertname="HighErrorRate", service="storm-{group}"}}'
        hook["groupLabels"] = {"alertname": "HighErrorRate", "service": f"storm-{group}"}
        base = hook["alerts"][0]
        hook["alerts"] = []
        for n in range(1 + sent[group] // join_every):
            alert = copy.deepcopy(base)
            alert["labels"] = {**base["labels"], "service": f"storm-{group}", "pod": f"pod-{n}"}
            alert["fingerprint"] = f"{group:08x}{n:08x}"
            hook["alerts"].append(alert)
        sent[group] += 1
        bodies.append(json.dumps(hook).encode())
    return bodies


async def post_all(port: int, bodies: list[bytes], connections: int) -> tuple[int, int, float]:
    """Every body posted over `connections` keep-alive connections, back to back."""
    queue = iter(bodies)
    accepted = failed = 0
    started = time.monotonic()

    async def worker() -> None:
        nonlocal accepted, failed
        conn = HttpConnection("127.0.0.1", port, "/alerts", TOKEN)
        for body in queue:
            try:
                status = await conn.post(body)
            except (OSError, asyncio.IncompleteReadError, RuntimeError):
                conn.close()
                failed += 1
                continue
            if status == 202:
                accepted += 1
            else:
                failed += 1
        conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return accepted, failed, time.monotonic() - started


class PeakRss:
    """Peak VmRSS (MiB) of each process of `oncall up` (by role), sampled every 200 ms."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def roles(self) -> dict[str, int]:
        kids = children(self.pid)
        nats = [k for k in kids if command_name(k).startswith("nats-server")]
        others = [k for k in kids if k not in nats]
        found = {"services process": self.pid}
        if nats:
            found["nats-server"] = nats[0]
        if others:
            found["intake process"] = others[0]
        return found

    def _run(self) -> None:
        while not self._stop.is_set():
            for role, pid in self.roles().items():
                self.peak[role] = max(self.peak.get(role, 0.0), proc_status(pid, "VmRSS"))
            self._stop.wait(0.2)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def max_in_flight(model: FakeOpenAI) -> int:
    events = []
    for request in model.requests:
        events += [(request.started_at, 1), (request.finished_at, -1)]
    current = peak = 0
    for _, step in sorted(events):
        current += step
        peak = max(peak, current)
    return peak


def wait_drained(twilio: FakeTwilio, model: FakeOpenAI, quiet: float, limit: float) -> float:
    """Seconds until neither the model nor Twilio got a request for `quiet` s (at most `limit`)."""
    started = time.monotonic()
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() - started < limit:
        count = len(twilio.requests) + len(model.requests)
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change >= quiet:
            return last_change - started
        time.sleep(0.2)
    return limit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--join-every", type=int, default=25, help="a new alert joins every N notifications")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--model-seconds", type=float, default=0.2)
    parser.add_argument("--drain-limit", type=float, default=180.0)
    args = parser.parse_args()

    now = datetime.now(UTC)
    template = demo.demo_alert_webhook(now)
    bodies = notifications(template, args.alerts, args.groups, args.join_every, seed=1)
    with (
        demo_backends(demo.demo_log_lines(now, seconds=300)) as backends,
        FakeOpenAI([diagnosis], delay_seconds=args.model_seconds) as model,
        FakeTwilio() as twilio,
    ):
        settings = backends.settings() | model_settings(model) | whatsapp_settings(twilio, ",".join(NUMBERS))
        settings["ONCALL_MAX_CONCURRENT_DIAGNOSES"] = str(MAX_CONCURRENT)
        with oncall_up(settings, backends.tmp) as oncall, PeakRss(oncall.proc.pid) as rss:
            idle = {role: proc_status(pid, "VmRSS") for role, pid in rss.roles().items()}
            accepted, failed, posting = asyncio.run(post_all(oncall.port, bodies, args.connections))
            drain = wait_drained(twilio, model, quiet=5.0, limit=args.drain_limit)
            metrics = httpx.get(oncall.url + "/metrics", timeout=10).text
    diagnoses = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("oncall_diagnoses_total{")
    )
    tags = (INCIDENT_TAG.search(message.get("Body", "")) for message in twilio.messages)
    incidents = {tag[0] for tag in tags if tag}
    per_number = {n: sum(1 for m in twilio.messages if m["To"].endswith(n)) for n in NUMBERS}
    print(f"{'measure':<58} {'value':>12}   target")
    rows = [
        ("alerts posted / accepted / failed", f"{args.alerts}/{accepted}/{failed}", ""),
        ("accepted/s while posting", f"{accepted / posting:.0f}", f"({args.connections} connections)"),
        ("incidents named in WhatsApp messages", f"{len(incidents)}", f"== {args.groups}"),
        ("diagnoses (oncall_diagnoses_total)", f"{diagnoses:.0f}", f"== {args.groups}"),
        *(
            (f"WhatsApp messages to {n}", f"{count}", f"== {args.groups} (+ re-diagnoses of joined alerts)")
            for n, count in per_number.items()
        ),
        ("model calls", f"{len(model.chat_requests)}", f"== {args.groups}"),
        ("model calls in flight at most", f"{max_in_flight(model)}", f"<= {MAX_CONCURRENT}"),
        ("time to drain after the last POST", f"{drain:.1f} s", ""),
    ]
    for role, peak in sorted(rss.peak.items()):
        limit = (
            f"<= {SERVICE_LIMIT_MIB:.0f} MiB"
            if role != "nats-server"
            else f"(idle {idle.get(role, 0):.0f} MiB, growth {peak - idle.get(role, 0):.0f})"
        )
        rows.append((f"peak RSS, {role}", f"{peak:.0f} MiB", limit))
    total = sum(peak for role, peak in rss.peak.items() if role != "nats-server")
    rows.append(
        ("peak RSS, local mode (Python processes)", f"{total:.0f} MiB", f"<= {LOCAL_LIMIT_MIB:.0f} MiB")
    )
    for label, value, target in rows:
        print(f"{label:<58} {value:>12}   {target}")
    print(
        f"({args.alerts} notifications in {args.groups} groups, a new alert every {args.join_every} "
        f"notifications of a group, model {args.model_seconds * 1000:.0f} ms a call, 2 paged numbers; "
        "peak RSS sampled every 200 ms)"
    )


if __name__ == "__main__":
    main()
