"""Benchmark of alert intake: Alertmanager webhooks posted to `oncall up` on loopback.

Starts `oncall up` (all five services, embedded nats-server, rule-based diagnoser, console
channel) as a child process, then drives POST /alerts from a separate load-generator process:

* open loop at each offered rate (default 100, 500 and 2,000 requests/s for 10 s each):
  requests are issued on a fixed schedule whatever the server does, and each latency is
  measured from the request's *scheduled* send time to the end of its response (no coordinated
  omission: time spent queued behind a slow server counts);
* closed loop with N keep-alive connections sending back to back: the maximum throughput.

Every request is a distinct alert group (its own groupKey and `service` label), so every one
opens a new incident that the diagnoser investigates and the notifier prints: the worst case.
POST /alerts answers 202 only after JetStream acknowledged the publish, so the latency is the
ack latency. The console channel's output goes to a file under the data directory; printing
thousands of diagnoses is part of the load.

Before that, the client's own ceiling is measured against a trivial HTTP server (another
process answering 202 at once), so that a client limit is not mistaken for a server limit.

    .venv/bin/python bench/ingest.py [--rates 100,500,2000] [--seconds 10] [--max-concurrency 64]

All traffic goes to 127.0.0.1; every phase is bounded in time and the script stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.runtime.environment import without_product_settings

ONCALL = str(Path(sys.executable).with_name("oncall"))
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "alertmanager" / "alertmanager_webhook_real.json"
REQUEST_TIMEOUT_SECONDS = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the webhooks ---------------------------------------------------------------------------


class Webhooks:
    """Distinct Alertmanager webhooks shaped like the captured fixture, built by substitution in
    bytes (a few microseconds each) so that building them costs the client next to nothing."""

    SERVICE = "@@service@@"
    FINGERPRINT = "@@fp@@"

    def __init__(self, fixture: bytes, run_id: str):
        hook = json.loads(fixture)
        old_service = hook["commonLabels"]["service"]
        for alert in hook["alerts"]:
            alert["labels"]["service"] = self.SERVICE
            alert["fingerprint"] = self.FINGERPRINT
            alert["startsAt"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            for name, text in alert["annotations"].items():
                alert["annotations"][name] = text.replace(old_service, self.SERVICE)
        for labels in ("groupLabels", "commonLabels"):
            if "service" in hook[labels]:
                hook[labels]["service"] = self.SERVICE
        for name, text in hook["commonAnnotations"].items():
            hook["commonAnnotations"][name] = text.replace(old_service, self.SERVICE)
        hook["groupKey"] = hook["groupKey"].replace(f'"{old_service}"', f'"{self.SERVICE}"')
        assert self.SERVICE in hook["groupKey"], "the fixture's groupKey does not name its service"
        self._template = json.dumps(hook, separators=(",", ":")).encode()
        self.run_id = run_id

    def body(self, phase: str, index: int) -> bytes:
        service = f"bench-{self.run_id}-{phase}-{index}".encode()
        fingerprint = hashlib.blake2b(service, digest_size=8).hexdigest().encode()
        return self._template.replace(b"@@service@@", service).replace(b"@@fp@@", fingerprint)


# --- a lean HTTP/1.1 keep-alive client ------------------------------------------------------


class HttpConnection:
    """One keep-alive connection: POST, read status line, headers and Content-Length body."""

    def __init__(self, host: str, port: int, path: str, token: str):
        self.host, self.port = host, port
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: Alertmanager/0.25.0 (bench)\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n"
        ).encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(self._head % len(body) + body)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError("response without Content-Length")
        length = int(lower[at + 17 : lower.index(b"\r\n", at + 2)])
        if length:
            await self._reader.readexactly(length)
        if b"\r\nconnection: close" in lower:
            self.close()
        return status

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


# --- load phases (run in a separate process) --------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    offered: float | None  # requests/s; None for the closed loop
    connections: int
    scheduled: int = 0
    completed: int = 0
    accepted: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    unfinished: int = 0
    elapsed: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    client_cpu: float = 0.0  # seconds of CPU used by the load generator
    # Filled in by the orchestrator:
    server_cpu: float = 0.0
    nats_cpu: float = 0.0
    other_cpu: float = 0.0  # the rest of the machine: other processes, kernel threads
    diagnosed: int = 0
    notified: int = 0
    backlog_after: int = 0

    @property
    def accepted_per_s(self) -> float:
        return self.accepted / self.elapsed if self.elapsed else 0.0


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def _summarize(result: PhaseResult, latencies: list[float], statuses: list[int], cpu_start: float) -> None:
    latencies.sort()
    result.completed = sum(1 for status in statuses if status >= 0)
    for status in statuses:
        key = str(status) if status > 0 else "error" if status == 0 else "unfinished"
        result.statuses[key] = result.statuses.get(key, 0) + 1
    result.accepted = result.statuses.get("202", 0)
    result.errors = result.statuses.get("error", 0)
    result.p50_ms = percentile(latencies, 0.50) * 1000
    result.p99_ms = percentile(latencies, 0.99) * 1000
    result.max_ms = (latencies[-1] if latencies else 0.0) * 1000
    result.client_cpu = time.process_time() - cpu_start


async def _open_loop(
    target: tuple[str, int, str], hooks: Webhooks, name: str, rate: float, seconds: float, connections: int
) -> PhaseResult:
    host, port, token = target
    result = PhaseResult(name=name, offered=rate, connections=connections)
    total = int(rate * seconds)
    tag = phase_tag(name)
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    latencies: list[float] = []
    statuses: list[int] = []
    answered = bytearray(total)
    clock = time.perf_counter
    cpu_start = time.process_time()

    async def worker() -> None:
        conn = HttpConnection(host, port, "/alerts", token)
        try:
            while (item := await queue.get()) is not None:
                index, scheduled = item
                try:
                    status = await asyncio.wait_for(
                        conn.post(hooks.body(tag, index)), REQUEST_TIMEOUT_SECONDS
                    )
                except (OSError, asyncio.IncompleteReadError, RuntimeError, TimeoutError, ValueError):
                    conn.close()
                    status = 0
                latencies.append(clock() - scheduled)
                statuses.append(status)
                answered[index] = 1
        finally:
            conn.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = clock() + 0.05
    sent = 0
    while sent < total:
        now = clock()
        while sent < total and start + sent / rate <= now:
            queue.put_nowait((sent, start + sent / rate))
            sent += 1
        if sent < total:
            await asyncio.sleep(max(0.0, start + sent / rate - clock()))
    for _ in workers:
        queue.put_nowait(None)
    # Bounded: whatever is not answered REQUEST_TIMEOUT_SECONDS after the schedule ends is
    # reported as unfinished.
    _, pending = await asyncio.wait(workers, timeout=REQUEST_TIMEOUT_SECONDS)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    end = clock()
    result.scheduled = total
    result.elapsed = max(seconds, end - start)
    result.unfinished = total - len(latencies)
    # A request cut off unanswered counts in the percentiles with the time it had waited so far
    # (a lower bound), so that a stalled server cannot look fast by leaving requests out.
    latencies += [end - (start + i / rate) for i in range(total) if not answered[i]]
    statuses += [-1] * result.unfinished
    _summarize(result, latencies, statuses, cpu_start)
    return result


async def _closed_loop(
    target: tuple[str, int, str], hooks: Webhooks, name: str, seconds: float, connections: int
) -> PhaseResult:
    host, port, token = target
    result = PhaseResult(name=name, offered=None, connections=connections)
    latencies: list[float] = []
    statuses: list[int] = []
    clock = time.perf_counter
    counter = iter(range(10**9))
    tag = phase_tag(name)
    cpu_start = time.process_time()
    start = clock()
    deadline = start + seconds

    async def worker() -> None:
        conn = HttpConnection(host, port, "/alerts", token)
        try:
            while (sent := clock()) < deadline:
                try:
                    status = await asyncio.wait_for(
                        conn.post(hooks.body(tag, next(counter))), REQUEST_TIMEOUT_SECONDS
                    )
                except (OSError, asyncio.IncompleteReadError, RuntimeError, TimeoutError, ValueError):
                    conn.close()
                    status = 0
                latencies.append(clock() - sent)
                statuses.append(status)
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    result.elapsed = clock() - start
    result.scheduled = len(latencies)
    _summarize(result, latencies, statuses, cpu_start)
    return result


def run_phase(
    target: tuple[str, int, str],
    fixture: bytes,
    run_id: str,
    name: str,
    rate: float | None,
    seconds: float,
    connections: int,
) -> PhaseResult:
    """Entry point of the load-generator process: one phase, then its summary."""
    hooks = Webhooks(fixture, run_id)
    if rate is None:
        return asyncio.run(_closed_loop(target, hooks, name, seconds, connections))
    return asyncio.run(_open_loop(target, hooks, name, rate, seconds, connections))


def phase_tag(name: str) -> str:
    """A phase name as it can appear in a service label: `oncall up: 500/s` -> `oncallup500s`."""
    return re.sub(r"[^a-z0-9]+", "", name.lower())


# --- a trivial server, for the client's own ceiling -----------------------------------------


class _TrivialHttp(asyncio.Protocol):
    """Answers every request with a fixed 202, as small as alert_ingest's answer."""

    BODY = b'{"incident_ids":["abcdef"],"status":"firing","change":"new","duplicate":false}'
    RESPONSE = b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(BODY),
        BODY,
    )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            at = head.find(b"\r\ncontent-length:")
            length = int(head[at + 17 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(self.RESPONSE)


def serve_trivial(port_out: Any, lifetime: float) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_TrivialHttp, "127.0.0.1", 0)
        port_out.put(server.sockets[0].getsockname()[1])
        await asyncio.sleep(lifetime)  # stops by itself even if the parent dies

    asyncio.run(main())


def serve_bare(port_out: Any, lifetime: float, requests: int = 1) -> None:
    """The physical limit of the intake (issue 14, item 6): the same server stack as `oncall up`'s
    intake (uvicorn with httptools on uvloop) and its own embedded nats-server, an ASGI app that
    answers 202 after one bare nats-py JetStream publish of the body, acknowledged. No auth, no
    parsing, no index: what any intake on this stack and this machine cannot beat. With
    `requests=2`, a create of a new key first (a publish expecting no earlier message on its
    subject, which is what a KV create is): the two NATS requests of the product's contract, the
    group index entry and the event."""
    import nats
    import uvicorn

    from services.runtime.cli import new_event_loop
    from services.runtime.embedded_nats import EmbeddedNats

    async def main(store: Path) -> None:
        embedded = EmbeddedNats(store)
        nc = await nats.connect(embedded.start())
        js = nc.jetstream()
        await js.add_stream(name="BARE", subjects=["bare.alerts"])
        await js.add_stream(name="BARE_INDEX", subjects=["bare.index.>"])
        counter = iter(range(1 << 62))
        create = {"Nats-Expected-Last-Subject-Sequence": "0"}

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            body, more = b"", True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
            n = str(next(counter))
            if requests > 1:
                await js.publish(f"bare.index.{n}", b"{}", headers=create)
            await js.publish("bare.alerts", body, headers={"Nats-Msg-Id": n})
            await send({"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"{}"})

        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, http="httptools", log_level="warning", lifespan="off"
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                serving.result()  # its start-up error
            await asyncio.sleep(0.01)
        port_out.put(server.servers[0].sockets[0].getsockname()[1])
        try:
            await asyncio.sleep(lifetime)  # stops by itself even if the parent dies
        finally:
            server.should_exit = True
            await serving
            await nc.close()
            embedded.stop()

    with tempfile.TemporaryDirectory(prefix="bench-bare-") as tmp:
        new_event_loop().run_until_complete(main(Path(tmp)))


def bare_limit(
    spawn: Any, phase: Callable[..., PhaseResult], args: argparse.Namespace, rates: list[float]
) -> list[PhaseResult]:
    """The bare stack (serve_bare) at the offered rates and in a closed loop: the limit each
    `oncall up` row is printed against."""
    ports = spawn.Queue()
    lifetime = (len(rates) + 1) * (args.seconds + 15) + 20
    server = spawn.Process(target=serve_bare, args=(ports, lifetime, args.limit_requests), daemon=True)
    server.start()
    results = []
    try:
        target = ("127.0.0.1", ports.get(timeout=30), "x")
        plan: list[tuple[str, float | None, int]] = [
            (f"limit: {rate:.0f}/s", rate, args.open_connections) for rate in rates
        ]
        plan.append(("limit: closed", None, args.max_concurrency))
        for name, offered, conns in plan:
            kids = children(server.pid or 0)
            pids = [server.pid or 0, *kids]
            cpu_before = sum(cpu_seconds(pid) for pid in pids)
            machine_before, own_before = machine_busy_seconds(), time.process_time()
            result = phase(target, name, offered, conns)
            result.server_cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
            mine = result.server_cpu + result.client_cpu + time.process_time() - own_before
            result.other_cpu = max(0.0, machine_busy_seconds() - machine_before - mine)
            results.append(result)
    finally:
        server.terminate()
        server.join(5)
    return results


def ratios(results: list[PhaseResult], limit_requests: int) -> str:
    """Each `oncall up` row against the bare stack's row of the same phase."""
    limits = {r.name.split(": ", 1)[1]: r for r in results if r.name.startswith("limit: ")}
    lines = [
        "against the limit (bare uvicorn+httptools+uvloop ASGI app, "
        + ("an index create and a publish" if limit_requests > 1 else "one nats-py JetStream publish")
        + ", 202):"
    ]
    for r in results:
        if not r.name.startswith("oncall up: ") or (limit := limits.get(r.name.split(": ", 1)[1])) is None:
            continue
        lines.append(
            f"  {r.name:<20} accepted/s {r.accepted_per_s:>7.0f} of {limit.accepted_per_s:>7.0f} "
            f"({r.accepted_per_s / max(limit.accepted_per_s, 1e-9):.2f}x); p99 {r.p99_ms:.1f} ms vs "
            f"{limit.p99_ms:.1f} ms ({r.p99_ms / max(limit.p99_ms, 1e-9):.1f}x)"
        )
    return "\n".join(lines)


# --- the system under test --------------------------------------------------------------------


def proc_status(pid: int, key: str) -> float:
    """A field of /proc/<pid>/status in MiB (VmRSS, VmHWM)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def machine_busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine, all cores (from /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@dataclass
class Oncall:
    pid: int
    url: str
    token: str
    stdout_path: Path | None = None
    stderr_path: Path | None = None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].strip("/"))

    @property
    def nats_pid(self) -> int:
        """The embedded nats-server (0 when NATS is external)."""
        kids = [kid for kid in children(self.pid) if command_name(kid).startswith("nats-server")]
        return kids[0] if kids else 0

    @property
    def python_pids(self) -> list[int]:
        """`oncall up` and its intake process (the child that is not nats-server)."""
        return [self.pid, *(kid for kid in children(self.pid) if kid != self.nats_pid)]

    def cpu(self) -> tuple[float, float]:
        return sum(cpu_seconds(pid) for pid in self.python_pids), cpu_seconds(self.nats_pid)

    def rss(self) -> tuple[float, float]:
        return sum(proc_status(pid, "VmRSS") for pid in self.python_pids), proc_status(self.nats_pid, "VmRSS")

    def counters(self) -> dict[str, float]:
        """The product's own counters from GET /metrics (accepted webhooks, diagnoses, sends)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
            text = response.read().decode()
        wanted = {
            "accepted": r'^oncall_ingest_webhooks_total\{outcome="accepted"\} (\S+)$',
            "diagnosed": r"^oncall_diagnoses_total\{[^}]*\} (\S+)$",
            "sent": r'^oncall_whatsapp_messages_total\{[^}]*outcome="sent"[^}]*\} (\S+)$',
        }
        return {
            key: sum(float(v) for v in re.findall(pattern, text, flags=re.MULTILINE))
            for key, pattern in wanted.items()
        }


# `oncall up` under cProfile (CPU time, main thread): the same `main` the console script runs.
CPROFILE_WRAPPER = """
import cProfile, pstats, sys, time
from services.runtime.cli import main
profiler = cProfile.Profile(time.process_time)
profiler.enable()
try:
    code = main(sys.argv[2:])
finally:
    profiler.disable()
    with open(sys.argv[1], "w") as out:
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(50)
        stats.sort_stats("cumulative").print_stats(80)
sys.exit(code)
"""


@contextmanager
def oncall_up(data_dir: Path, log_level: str | None, cprofile: Path | None) -> Iterator[Oncall]:
    port = free_port()
    token = secrets.token_urlsafe(24)
    env = without_product_settings(os.environ)  # a developer's settings must not reach the product
    env["INGEST_TOKEN"] = token
    if log_level:
        env["ONCALL_LOG_LEVEL"] = log_level
    data_dir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = data_dir / "oncall.stdout", data_dir / "oncall.stderr"
    command = [ONCALL]
    if cprofile is not None:
        command = [sys.executable, "-c", CPROFILE_WRAPPER, str(cprofile.resolve())]
    command += ["up", "--http-port", str(port), "--data-dir", str(data_dir)]
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=REPO_ROOT)
    oncall = Oncall(proc.pid, f"http://127.0.0.1:{port}", token, stdout_path, stderr_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                tail = stderr_path.read_text()[-2000:]
                raise RuntimeError(f"oncall up exited with {proc.returncode}: {tail}")
            try:
                with urllib.request.urlopen(oncall.url + "/readyz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("oncall up was not ready within 30 s")
            time.sleep(0.1)
        yield oncall
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def external(url: str, pid: int | None) -> Iterator[Oncall]:
    """An instance started by someone else (e.g. `oncall run alert_ingest`); INGEST_TOKEN from the
    environment."""
    yield Oncall(pid or 0, url.rstrip("/"), os.environ.get("INGEST_TOKEN", ""))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PeakRss:
    """Samples the RSS of `oncall up` and its nats-server every 200 ms while a phase runs."""

    def __init__(self, sample: Callable[[], tuple[float, float]]):
        self._sample = sample
        self.peak = (0.0, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            python, nats = self._sample()
            self.peak = (max(self.peak[0], python), max(self.peak[1], nats))
            if self._stop.wait(0.2):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def py_spy(pid: int, out_dir: Path | None, name: str, seconds: float) -> Iterator[None]:
    """`py-spy record` attached to `pid` for the phase: 100 Hz, only the thread holding the GIL
    (where the Python CPU goes). It pauses the process for each sample, so latencies measured
    with it are higher; use it for proportions. The raw stacks are kept beside a summary."""
    if out_dir is None:
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"{phase_tag(name)}.collapsed"
    command = [
        str(Path(sys.executable).with_name("py-spy")),
        "record",
        "--pid",
        str(pid),
        "--gil",
    ]
    command += ["--rate", "100", "--format", "raw", "--output", str(raw), "--duration", str(int(seconds))]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
    if raw.exists():
        summary = summarize_stacks(raw.read_text())
        (out_dir / f"{phase_tag(name)}.txt").write_text(f"py-spy of `oncall up` during {name}\n\n{summary}")


def _frame_name(frame: str) -> tuple[str, str]:
    """`post (services/x.py:12)` -> (`post (services/x.py)`, `services/x.py`), without the line."""
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame, frame
    function, path = match.groups()
    path = re.sub(r"^.*/site-packages/", "", path)
    path = re.sub(r"^.*/lib/python3\.\d+/", "stdlib/", path)
    return f"{function} ({path})", path


def _package(path: str) -> str:
    parts = path.split("/")
    if parts[0] == "stdlib":
        return "stdlib/" + (parts[1].removesuffix(".py") if len(parts) > 1 else "?")
    if parts[0] == "services" and len(parts) > 1:
        return "services/" + parts[1].removesuffix(".py")
    return parts[0].removesuffix(".py")


SERVICE_FRAME = re.compile(r"services/(alert_ingest|diagnoser|tools|notifier|ticketing)/")
HTTP_PACKAGES = ("uvicorn", "h11", "httptools", "starlette")


def _owner(paths: list[str]) -> str:
    """Whose work a sample is: the first service module on the stack, else the layer it is in."""
    for path in paths:
        if match := SERVICE_FRAME.match(path):
            return match.group(1)
    packages = {_package(path) for path in paths}
    if packages.intersection(HTTP_PACKAGES):
        return "HTTP server (uvicorn, h11, starlette), no handler frame"
    if "services/runtime/bus.py" in paths:
        return "runtime bus (consumer wrapper: parse, ack, dead-letter)"
    if "faststream" in packages:
        return "faststream (consume loop, middlewares), no handler frame"
    if "nats" in packages:
        return "nats client (socket reads, parser, flusher)"
    return "event loop, other"


# Layers a sample is charged to: the deepest frame of one of these wins, so the standard library
# (sockets, contextvars, random, ...) is charged to the layer that called it.
LAYERS = (
    ("OpenTelemetry (spans, context)", ("opentelemetry", "/trace/__init__", "attributes/__init__")),
    ("Prometheus (client + FastStream middleware)", ("prometheus_client/", "faststream/prometheus")),
    ("fast_depends / anyio (DI, worker-thread hop)", ("fast_depends/", "anyio/", "sniffio/")),
    ("FastStream (other)", ("faststream/",)),
    ("nats-py (client, JetStream, KV)", ("nats/",)),
    ("pydantic", ("pydantic",)),
    ("HTTP: uvicorn, h11/httptools, starlette", ("uvicorn/", "h11/", "starlette/", "httptools")),
    ("logging", ("logging/",)),
    ("services/alert_ingest", ("services/alert_ingest",)),
    ("services/diagnoser", ("services/diagnoser",)),
    ("services/notifier", ("services/notifier",)),
    ("services/tools", ("services/tools",)),
    ("services/contracts, runtime (bus, metrics, logs)", ("services/contracts", "services/runtime/")),
)


def _layer(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, keys in LAYERS:
            if any(key in frame for key in keys) and "services/runtime/cli.py" not in frame:
                return name
    return "asyncio event loop, sockets, threads (stdlib)"


def summarize_stacks(collapsed: str, top: int = 30) -> str:
    """Self and inclusive time per function, self time per package, and time per service
    (by the first service module on the stack), from collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    packages: dict[str, int] = {}
    owners: dict[str, int] = {}
    layers: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        layer = _layer(stack.split(";"))
        layers[layer] = layers.get(layer, 0) + count
        frames = [_frame_name(f) for f in stack.split(";") if "(" in f]
        if not frames:
            continue
        leaf, leaf_path = frames[-1]
        owner = _owner([path for _, path in frames])
        owners[owner] = owners.get(owner, 0) + count
        own[leaf] = own.get(leaf, 0) + count
        packages[_package(leaf_path)] = packages.get(_package(leaf_path), 0) + count
        for name in {name for name, _ in frames}:
            inclusive[name] = inclusive.get(name, 0) + count
    if not total:
        return "no samples\n"

    def rows(counts: dict[str, int]) -> str:
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
        return "\n".join(f"{100 * n / total:6.1f}%  {name}" for name, n in ranked)

    return (
        f"{total} samples of the thread holding the GIL (idle excluded)\n\n"
        f"time by layer (deepest layer on the stack; stdlib charged to its caller)\n{rows(layers)}\n\n"
        f"time by service (first service module on the stack)\n{rows(owners)}\n\n"
        f"self time by package\n{rows(packages)}\n\n"
        f"self time by function\n{rows(own)}\n\n"
        f"inclusive time by function\n{rows(inclusive)}\n"
    )


# --- output -----------------------------------------------------------------------------------


def table(results: list[PhaseResult], wall: dict[str, float]) -> str:
    columns = [
        ("phase", 20), ("offered/s", 9), ("conns", 5), ("sent", 6), ("accepted", 8), ("failed", 6),
        ("accepted/s", 10), ("p50 ms", 8), ("p99 ms", 8), ("max ms", 8), ("cpu oncall", 10),
        ("ms cpu/req", 10), ("cpu nats", 8), ("cpu client", 10), ("cpu other", 9), ("diagnosed", 9),
        ("notified", 8), ("backlog", 7),
    ]  # fmt: skip

    def row(cells: list[str]) -> str:
        return " ".join(
            f"{cell:<{width}}" if i == 0 else f"{cell:>{width}}"
            for i, (cell, (_, width)) in enumerate(zip(cells, columns, strict=True))
        )

    header = row([title for title, _ in columns])
    lines = [header, "-" * len(header)]
    for r in results:
        seconds = wall.get(r.name, r.elapsed) or 1.0
        cells = [
            r.name,
            f"{r.offered:.0f}" if r.offered is not None else "closed",
            str(r.connections),
            str(r.scheduled),
            str(r.accepted),
            str(r.completed - r.accepted + r.unfinished),
            f"{r.accepted_per_s:.0f}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            f"{r.max_ms:.1f}",
            f"{100 * r.server_cpu / seconds:.0f}%",
            f"{1000 * r.server_cpu / r.completed:.2f}" if r.completed else "-",
            *(f"{100 * cpu / seconds:.0f}%" for cpu in (r.nats_cpu, r.client_cpu, r.other_cpu)),
            str(r.diagnosed),
            str(r.notified),
            str(r.backlog_after),
        ]
        lines.append(row(cells))
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rates", default="100,500,2000", help="open-loop offered rates, requests/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each phase")
    parser.add_argument("--max-concurrency", type=int, default=64, help="connections of the closed loop")
    parser.add_argument(
        "--no-closed", action="store_true", help="skip the closed loop (to cost a fixed number of incidents)"
    )
    parser.add_argument(
        "--open-connections", type=int, default=64, help="connection pool of the open-loop generator"
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=60.0,
        help="after each phase, wait up to this long for the diagnoser and notifier to catch up",
    )
    parser.add_argument("--log-level", help="ONCALL_LOG_LEVEL for `oncall up` (default: unset = INFO)")
    parser.add_argument("--skip-ceiling", action="store_true", help="skip the trivial-server client ceiling")
    parser.add_argument(
        "--skip-limit",
        action="store_true",
        help="skip the bare-stack limit (ASGI app + one JetStream publish)",
    )
    parser.add_argument(
        "--limit-requests",
        type=int,
        choices=(1, 2),
        default=1,
        help="NATS requests of the bare stack per webhook: 1 (the event), 2 (an index create first, as ours)",
    )
    parser.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE, help="webhook to vary")
    parser.add_argument("--keep", type=Path, help="data dir of `oncall up`, kept (logs, console output)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="first wait up to this long for the machine to be idle (other load < 15%% of a core)",
    )
    profiling = parser.add_argument_group("profiling")
    profiling.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="sample `oncall up` with py-spy during each phase; a text summary per phase in DIR",
    )
    profiling.add_argument(
        "--cprofile", type=Path, metavar="FILE", help="run `oncall up` under cProfile; pstats text to FILE"
    )
    profiling.add_argument(
        "--url",
        help="load an instance started elsewhere (INGEST_TOKEN from the environment) instead of `oncall up`",
    )
    profiling.add_argument("--pid", type=int, help="with --url: its process, for CPU and RSS")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    # SIGTERM unwinds like Ctrl-C, so that `oncall up` and the generator are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    fixture = args.fixture.read_bytes()
    run_id = secrets.token_hex(3)
    spawn = multiprocessing.get_context("spawn")
    busy = wait_for_quiet(args.wait_quiet)
    if busy > 0.15:
        print(
            f"warning: the machine is busy ({100 * busy:.0f}% of a core): figures will be low",
            file=sys.stderr,
        )
    results: list[PhaseResult] = []
    wall: dict[str, float] = {}

    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as generator:

        def phase(target: tuple[str, int, str], name: str, rate: float | None, conns: int) -> PhaseResult:
            print(f"  {name} ...", file=sys.stderr, flush=True)
            job = generator.submit(run_phase, target, fixture, run_id, name, rate, args.seconds, conns)
            return job.result(timeout=args.seconds + 3 * REQUEST_TIMEOUT_SECONDS + 30)

        if not args.skip_ceiling:
            results += client_ceiling(spawn, phase, args, max(rates, default=2000.0))
        if not args.skip_limit:
            results += bare_limit(spawn, phase, args, rates)

        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
            data_dir = args.keep or Path(tmp)
            system = (
                external(args.url, args.pid)
                if args.url
                else oncall_up(data_dir, args.log_level, args.cprofile)
            )
            with system as oncall:
                target = ("127.0.0.1", oncall.port, oncall.token)
                idle = oncall.rss()
                # Warm-up (imports, first KV and stream writes, connections): not reported.
                generator.submit(run_phase, target, fixture, run_id, "warmup", 50.0, 1.0, 8).result(60)
                _drain(oncall, args.drain_seconds)
                start_counters, start_cpu = oncall.counters(), oncall.cpu()
                peak = (0.0, 0.0)
                plan: list[tuple[str, float | None, int]] = [
                    (f"oncall up: {rate:.0f}/s", rate, args.open_connections) for rate in rates
                ]
                if not args.no_closed:
                    plan.append(("oncall up: closed", None, args.max_concurrency))
                for name, rate, conns in plan:
                    before, cpu_before = oncall.counters(), oncall.cpu()
                    machine_before, own_before = machine_busy_seconds(), time.process_time()
                    started = time.monotonic()
                    with PeakRss(oncall.rss) as sampler, py_spy(oncall.pid, args.py_spy, name, args.seconds):
                        result = phase(target, name, rate, conns)
                    wall[name] = time.monotonic() - started
                    machine = machine_busy_seconds() - machine_before
                    own = time.process_time() - own_before
                    cpu_after, after = oncall.cpu(), oncall.counters()
                    result.server_cpu = cpu_after[0] - cpu_before[0]
                    result.nats_cpu = cpu_after[1] - cpu_before[1]
                    mine = result.server_cpu + result.nats_cpu + result.client_cpu + own
                    result.other_cpu = max(0.0, machine - mine)
                    result.diagnosed = int(after["diagnosed"] - before["diagnosed"])
                    result.notified = int(after["sent"] - before["sent"])
                    peak = (max(peak[0], sampler.peak[0]), max(peak[1], sampler.peak[1]))
                    result.backlog_after = _drain(oncall, args.drain_seconds)
                    results.append(result)
                end = oncall.rss()
                hwm = proc_status(oncall.pid, "VmHWM")
                final, end_cpu = oncall.counters(), oncall.cpu()
                console = oncall.stdout_path.read_bytes() if oncall.stdout_path else b""
                log_lines = len(oncall.stderr_path.read_bytes().splitlines()) if oncall.stderr_path else 0

    print()
    print(table(results, wall))
    print()
    if not args.skip_limit:
        print(ratios(results, args.limit_requests))
        print()
    print(
        f"{'ingest RSS (MiB)':<24} {'oncall up (Python)':>18} {'nats-server':>12}   (Python: both processes)"
    )
    print(f"{'  idle, after start':<24} {idle[0]:>18.1f} {idle[1]:>12.1f}")
    print(f"{'  peak under load':<24} {peak[0]:>18.1f} {peak[1]:>12.1f}   (Python VmHWM {hwm:.1f})")
    print(f"{'  at the end':<24} {end[0]:>18.1f} {end[1]:>12.1f}")
    print()
    printed = console.count("── WhatsApp".encode())
    notified = final["sent"] - start_counters["sent"]
    run_cpu = [after - before for before, after in zip(start_cpu, end_cpu, strict=True)]
    print(
        f"whole run after warm-up: oncall up used {run_cpu[0]:.1f} CPU-s and nats-server {run_cpu[1]:.1f} "
        f"for {final['accepted'] - start_counters['accepted']:.0f} accepted and {notified:.0f} notified "
        f"incidents: {1000 * run_cpu[0] / max(notified, 1):.1f} ms of oncall CPU per incident, intake, "
        "diagnosis and notification together (exact when the backlog is 0)"
    )
    print(
        f"end to end: {final['accepted']:.0f} webhooks accepted, {final['diagnosed']:.0f} diagnosed, "
        f"{final['sent']:.0f} notified; {printed} console messages printed "
        f"({len(console) / 1e6:.1f} MB on stdout), {log_lines} log lines on stderr"
    )
    print(
        f"({args.seconds:.0f} s per phase, open-loop latency from the scheduled send time; log level "
        f"{args.log_level or 'INFO (default)'}; {os.cpu_count()} cores shared by oncall up, nats-server "
        "and the generator; cpu % = share of one core over the phase (other = the rest of the machine: "
        "other processes, kernel); ms cpu/req = CPU of the oncall process per answered request, "
        "diagnosis and notification included; diagnosed/notified = during "
        "the phase; backlog = accepted but not yet notified after the drain wait of up to "
        f"{args.drain_seconds:.0f} s)"
    )


def client_ceiling(
    spawn: Any, phase: Callable[..., PhaseResult], args: argparse.Namespace, rate: float
) -> list[PhaseResult]:
    """The generator against a trivial server in another process: closed loop, then `rate`."""
    ports = spawn.Queue()
    server = spawn.Process(target=serve_trivial, args=(ports, 4 * args.seconds + 20), daemon=True)
    server.start()
    results = []
    try:
        target = ("127.0.0.1", ports.get(timeout=10), "x")
        for name, offered, conns in (
            ("ceiling: closed", None, args.max_concurrency),
            (f"ceiling: {rate:.0f}/s", rate, args.open_connections),
        ):
            cpu_before = cpu_seconds(server.pid or 0)
            machine_before, own_before = machine_busy_seconds(), time.process_time()
            result = phase(target, name, offered, conns)
            result.server_cpu = cpu_seconds(server.pid or 0) - cpu_before
            mine = result.server_cpu + result.client_cpu + time.process_time() - own_before
            result.other_cpu = max(0.0, machine_busy_seconds() - machine_before - mine)
            results.append(result)
    finally:
        server.terminate()
        server.join(5)
    return results


def wait_for_quiet(limit: float) -> float:
    """Waits until the machine is nearly idle (a 2 s sample), at most `limit` s; returns the last
    busy share of one core. Other people's test runs on a 2-core machine halve the figures."""
    deadline = time.monotonic() + limit
    while True:
        before = machine_busy_seconds()
        time.sleep(2.0)
        busy = (machine_busy_seconds() - before) / 2.0
        if busy < 0.15 or time.monotonic() >= deadline:
            return busy
        print(f"  waiting for a quiet machine ({100 * busy:.0f}% of a core busy) ...", file=sys.stderr)


def _drain(oncall: Oncall, limit: float) -> int:
    """Waits until every accepted webhook is notified, at most `limit` s; returns the rest."""
    deadline = time.monotonic() + limit
    while True:
        counters = oncall.counters()
        backlog = int(counters["accepted"] - counters["sent"])
        if backlog <= 0 or time.monotonic() >= deadline:
            return max(0, backlog)
        time.sleep(1.0)  # each /metrics scrape costs the product a few ms


if __name__ == "__main__":
    main()
