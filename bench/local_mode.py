"""Benchmark of local mode as a newcomer meets it.

Prints: time from `oncall demo` start to the diagnosis on screen (median and max over N runs,
process start included), and the resident memory of an idle `oncall up` (Python process and its
embedded nats-server) after it has settled.

    .venv/bin/python bench/local_mode.py [--runs 5] [--idle-seconds 10]
"""

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ONCALL = str(Path(sys.executable).with_name("oncall"))
PRODUCT_PREFIXES = ("NATS_", "ONCALL_", "OPENAI_", "TWILIO_")
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(PRODUCT_PREFIXES)}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def demo_time_to_diagnosis(data_dir: Path) -> float:
    started = time.monotonic()
    proc = subprocess.Popen(
        [ONCALL, "demo", "--http-port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=CLEAN_ENV,
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if "✔ diagnosis" in line:
                elapsed = time.monotonic() - started
                assert re.search(r"inventory/inventory_service\.py:47", line), line
                return elapsed
        raise RuntimeError("the demo ended without a diagnosis")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def is_nats_server(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().startswith("nats-server")
    except OSError:
        return False


def idle_rss(data_dir: Path, idle_seconds: float) -> tuple[float, float, float]:
    """RSS (MiB) of `oncall up`'s services process, its intake process and its nats-server."""
    with socket.socket() as sock:  # a fixed port may be someone else's on a shared machine
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    proc = subprocess.Popen(
        [ONCALL, "up", "--http-port", port, "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**CLEAN_ENV, "INGEST_TOKEN": "bench"},  # without credentials the intake refuses to start
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        time.sleep(idle_seconds)
        kids = children(proc.pid)
        nats_rss = sum(rss_mib(child) for child in kids if is_nats_server(child))
        intake_rss = sum(rss_mib(child) for child in kids if not is_nats_server(child))
        return rss_mib(proc.pid), intake_rss, nats_rss
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        times = [demo_time_to_diagnosis(Path(tmp) / f"demo{n}") for n in range(args.runs)]
        oncall_rss, intake_rss, nats_rss = idle_rss(Path(tmp) / "up", args.idle_seconds)
    print(f"{'measure':<48} {'value':>12}")
    print(f"{'oncall demo start -> diagnosis on screen, median':<48} {statistics.median(times):>10.2f} s")
    print(f"{'oncall demo start -> diagnosis on screen, max':<48} {max(times):>10.2f} s")
    print(f"{'oncall up idle RSS, services process':<48} {oncall_rss:>8.1f} MiB")
    print(f"{'oncall up idle RSS, intake process':<48} {intake_rss:>8.1f} MiB")
    print(f"{'oncall up idle RSS, embedded nats-server':<48} {nats_rss:>8.1f} MiB")
    setup = f"runs={args.runs}, idle {args.idle_seconds:.0f} s, rule-based, console channel"
    print(f"({setup}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
