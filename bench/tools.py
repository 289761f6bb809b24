"""Benchmark of the tools service: fast, in parallel, cheap in tokens.

Prints a table:
  (a) request/reply round trip of a no-op tool over NATS (embedded nats-server on loopback),
      p50 and p99 over sequential calls, as the diagnoser calls (FastStream request, ToolResult
      parsed); target p50 <= 1 ms;
  (b) k = 3 and 10 parallel fetch_logs calls whose backend (the load balancer) takes L = 200 ms:
      total time, median and worst of several rounds, with one tools process and with two (the
      least Kubernetes runs); target <= L + 10 ms; beside it the floor, the same k requests sent
      straight to the backend (what the harness itself costs);
  (c) tokens of the reference incident (2,000 log lines, tests/tools/reference_incident.py):
      the load balancer's raw JSON vs the fetch_logs result, counted with services/tools/tokens.py;
      target <= 1/10, with every error signature and the failing stack frame present.
The tools service, the fake load balancer and the caller each run in a process of their own,
as in production.

    .venv/bin/python -m bench.tools [--calls 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import httpx
import nats
from faststream.nats import NatsBroker, NatsRouter

from bench.common import percentile
from services.contracts import tools
from services.contracts.models import ToolRequest, ToolResult
from services.contracts.tool_results import LogsResult
from services.contracts.tools import NoArgs, ToolSpec
from services.runtime.broker import make_broker
from services.runtime.bus import Bus
from services.runtime.cli import new_event_loop
from services.runtime.embedded_nats import EmbeddedNats
from services.runtime.service import ServiceContext
from services.tools.answers import ToolsRouter
from services.tools.app import wire
from services.tools.log_compression import size_in_tokens
from services.tools.settings import ToolsSettings
from services.tools.tokens import estimate_tokens
from tests.fakes.base import _Server
from tests.fakes.logs_fake import FakeLogs
from tests.tools.reference_incident import (
    ALERT_START,
    ERROR_TEMPLATES,
    PRICING_FILE,
    PRICING_LINE,
    SERVICE,
    reference_lines,
)

BACKEND_SECONDS = 0.2
NOOP = ToolSpec(name="noop", description="Answers at once.", args_model=NoArgs, kind="read")
START_TIMEOUT_SECONDS = 30
Row = tuple[str, str, str]
# Each part runs in its own process, as in production: the load balancer, the tools service,
# and the caller (this process, in the diagnoser's place). Forked: they share the imports.
PROCESSES = multiprocessing.get_context("fork")


async def request(broker: NatsBroker, spec: ToolSpec, args: dict[str, Any]) -> ToolResult:
    """One tool call as the diagnoser makes it."""
    reply = await broker.request(ToolRequest(args=args).to_bytes(), spec.subject, timeout=10)
    return ToolResult.model_validate_json(reply.body)


def _serve_tools(nats_url: str, lb_url: str | None, ready: EventType) -> None:
    """Child process: the tools service (or, without a load balancer, the no-op tool) until stopped."""

    async def noop(_: Any) -> None:
        return None

    async def serve() -> None:
        broker = make_broker(nats_url, "bench-tools")
        settings = ToolsSettings(LB_URL=lb_url)
        router: NatsRouter | None
        if lb_url is None:
            router = ToolsRouter(
                time_limit=settings.tool_timeout_seconds, max_workers=settings.tool_max_workers
            )
            router.serve(NOOP, noop)
        else:
            router = wire(ServiceContext(settings=settings, bus=Bus(broker))).router
        assert router is not None
        broker.include_router(router)
        await broker.start()
        ready.set()
        await asyncio.Event().wait()

    new_event_loop().run_until_complete(serve())  # the loop `oncall run tools` runs on


def _serve_logs(lines: list[dict[str, str]], delay: float, urls: Queue[str]) -> None:
    """Child process: the fake load balancer until stopped."""
    _Server.request_queue_size = 128  # socketserver's backlog of 5 would drop parallel connects
    with FakeLogs(lines, delay_seconds=delay) as lb:
        urls.put(lb.url)
        threading.Event().wait()


@contextmanager
def child(target: Callable[..., None], *args: Any) -> Iterator[None]:
    process = PROCESSES.Process(target=target, args=args, daemon=True)
    process.start()
    try:
        yield
    finally:
        process.terminate()
        process.join(10)


@contextmanager
def load_balancer(lines: list[dict[str, str]], delay: float = 0.0) -> Iterator[str]:
    urls: Queue[str] = PROCESSES.Queue()
    with child(_serve_logs, lines, delay, urls):
        yield urls.get(timeout=START_TIMEOUT_SECONDS)


@contextmanager
def tools_service(nats_url: str, lb_url: str | None, processes: int = 1) -> Iterator[None]:
    """`processes` replicas of the tools service: the requests are spread over them by their queue group."""
    with ExitStack() as replicas:
        for _ in range(processes):
            ready = PROCESSES.Event()
            replicas.enter_context(child(_serve_tools, nats_url, lb_url, ready))
            if not ready.wait(START_TIMEOUT_SECONDS):
                raise TimeoutError("the tools service did not start")
        yield


async def calling(nats_url: str, body: Callable[[NatsBroker], Awaitable[Any]]) -> Any:
    """Run `body` with a started broker as the caller."""
    broker = make_broker(nats_url, "bench-caller")
    await broker.start()
    try:
        return await body(broker)
    finally:
        await broker.stop()


async def timed_calls(call: Callable[[], Awaitable[Any]], calls: int) -> list[float]:
    """Milliseconds of each of `calls` sequential calls, after a warm-up."""
    for _ in range(200):  # warm-up: connections, caches, first runs of every code path
        await call()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def raw_calls(nats_url: str, calls: int) -> list[float]:
    """The same requests from a bare nats-py client: the tools service's share of the time."""
    connection = await nats.connect(nats_url)
    payload = ToolRequest(args={}).to_bytes()

    async def call() -> None:
        reply = await connection.request(NOOP.subject, payload, timeout=10)
        assert ToolResult.model_validate_json(reply.data).ok

    try:
        return await timed_calls(call, calls)
    finally:
        await connection.close()


async def round_trip(nats_url: str, calls: int) -> list[Row]:
    async def measure(broker: NatsBroker) -> list[float]:
        async def call() -> None:
            assert (await request(broker, NOOP, {})).ok

        return await timed_calls(call, calls)

    with tools_service(nats_url, None):
        samples = await calling(nats_url, measure)
        bare = await raw_calls(nats_url, calls)
    return [
        ("(a) no-op tool round trip over NATS, p50", f"{statistics.median(samples):.3f} ms", "<= 1 ms"),
        ("(a) no-op tool round trip over NATS, p99", f"{percentile(samples, 0.99):.3f} ms", ""),
        ("(a) ... from a bare nats-py client, p50", f"{statistics.median(bare):.3f} ms", "limit"),
        ("(a) ... tool / limit", f"{statistics.median(samples) / statistics.median(bare):.2f}x", ""),
    ]


async def direct_gets(lb_url: str, k: int, rounds: int) -> list[float]:
    """The floor: k GETs straight to the backend, with no NATS and no tool in between."""
    async with httpx.AsyncClient() as http:
        await asyncio.gather(*(http.get(f"{lb_url}/logs/tail") for _ in range(k)))  # warm-up
        totals = []
        for _ in range(rounds):
            started = time.perf_counter()
            await asyncio.gather(*(http.get(f"{lb_url}/logs/tail") for _ in range(k)))
            totals.append((time.perf_counter() - started) * 1000)
    return totals


async def parallel_calls(nats_url: str, rounds: int) -> list[Row]:
    async def tool_calls(broker: NatsBroker, k: int) -> list[float]:
        await asyncio.gather(*(request(broker, tools.FETCH_LOGS, {}) for _ in range(k)))  # warm-up
        totals = []
        for _ in range(rounds):
            started = time.perf_counter()
            results = await asyncio.gather(*(request(broker, tools.FETCH_LOGS, {}) for _ in range(k)))
            totals.append((time.perf_counter() - started) * 1000)
            assert all(r.ok for r in results)
        return totals

    rows: list[Row] = []
    # Ten lines: the backend's 200 ms is the point, not the compression.
    with load_balancer(reference_lines()[-10:], BACKEND_SECONDS) as lb_url:
        floors = {k: statistics.median(await direct_gets(lb_url, k, rounds)) for k in (3, 10)}
        # One tools process, then two: what Kubernetes runs (the HPA of deploy/k8s/apps/tools.yaml
        # keeps at least 2 replicas), and what spreads the calls' CPU over this machine's 2 cores.
        for processes in (1, 2):
            with tools_service(nats_url, lb_url, processes):
                for k in (3, 10):
                    totals = await calling(nats_url, partial(tool_calls, k=k))
                    result = f"{statistics.median(totals):.1f} ms (worst {max(totals):.1f})"
                    what = f"{processes} tools process{'es' if processes > 1 else ''}"
                    rows.append((f"(b) {k} parallel fetch_logs, L = 200 ms, {what}", result, "<= 210 ms"))
                    ratio = statistics.median(totals) / floors[k]
                    rows.append((f"(b) ... / limit ({k} GETs straight to that backend)", f"{ratio:.2f}x", ""))
        for k, floor in floors.items():
            rows.append((f"(b) limit: {k} GETs straight to that backend", f"{floor:.1f} ms", "limit"))
    return rows


async def tokens(nats_url: str) -> list[Row]:
    lines = reference_lines()
    args = {"service": SERVICE, "starts_at": ALERT_START.isoformat(), "seconds": 300}

    async def measure(broker: NatsBroker) -> ToolResult:
        return await request(broker, tools.FETCH_LOGS, args)

    with load_balancer(lines) as lb_url, tools_service(nats_url, lb_url):
        result: ToolResult = await calling(nats_url, measure)
    data = result.output(LogsResult)
    assert data is not None, result.error
    raw, compressed = estimate_tokens(json.dumps(lines)), size_in_tokens(data)  # as the model reads it
    signatures = {t.template for t in data.templates} >= set(ERROR_TEMPLATES)
    frame = (data.top_frame.file, data.top_frame.line) if data.top_frame else (None, None)
    present = f"3 error signatures: {'yes' if signatures else 'NO'}; frame {frame[0]}:{frame[1]}"
    assert frame == (PRICING_FILE, PRICING_LINE), frame
    return [
        (
            "(c) tokens, 2,000 log lines -> fetch_logs",
            f"{raw:,} -> {compressed:,} (1/{raw / compressed:.0f})",
            "<= 1/10",
        ),
        ("(c) ... what the result keeps", present, "all 3 + frame"),
    ]


async def main(calls: int, rounds: int) -> None:
    server = EmbeddedNats(Path(tempfile.mkdtemp(prefix="bench-tools-")))
    nats_url = server.start()
    try:
        rows = await round_trip(nats_url, calls)
        rows += await parallel_calls(nats_url, rounds)
        rows += await tokens(nats_url)
    finally:
        server.stop()
    width = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    print(f"{'measure':<{width[0]}}  {'result':<{width[1]}}  target")
    for name, result, target in rows:
        print(f"{name:<{width[0]}}  {result:<{width[1]}}  {target}")
    print(f"(load average while measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="round trips measured for (a)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of parallel calls for (b)")
    options = parser.parse_args()
    asyncio.run(main(options.calls, options.rounds))
