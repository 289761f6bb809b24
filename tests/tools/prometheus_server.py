"""A real Prometheus (the Debian `prometheus` binary) scraping a small exporter every second.

The exporter serves the seed's counters, `http_requests_total` and `http_errors_total` by
service, growing at fixed rates from its start, so a test knows the rates Prometheus must find.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
from fakes.base import FakeHTTPServer, RecordedRequest, Response
from support.binaries import require_binary
from support.processes import end_process_group, free_port, start_process

SCRAPE_SECONDS = 1
READY_TIMEOUT_SECONDS = 20.0
# (requests/s, errors/s) per service; None: that counter has no series at all.
RATES: Mapping[str, tuple[float, float | None]] = {
    "checkout": (10.0, 2.0),
    "search": (5.0, None),  # no error ever: the error counter was never created
    "idle": (0.0, 0.0),  # no traffic: the error rate is undefined
}
WORKERS = 80  # series of `worker_busy`, to show the series cap of query_prometheus


class CounterExporter(FakeHTTPServer):
    """`GET /metrics` in the Prometheus text format, counters = rate x seconds since start."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()

    def handle(self, req: RecordedRequest) -> Response:
        if req.path != "/metrics":
            return 404, {"Content-Type": "text/plain"}, b"not found\n"
        return 200, {"Content-Type": "text/plain; version=0.0.4"}, self.exposition().encode()

    def exposition(self) -> str:
        elapsed = time.monotonic() - self.started
        lines = ["# TYPE http_requests_total counter", "# TYPE http_errors_total counter"]
        for service, (requests, errors) in RATES.items():
            lines.append(f'http_requests_total{{service="{service}"}} {int(100 + requests * elapsed)}')
            if errors is not None:
                lines.append(f'http_errors_total{{service="{service}"}} {int(3 + errors * elapsed)}')
        lines.append("# TYPE worker_busy gauge")
        lines += [f'worker_busy{{worker="w{i:02d}"}} {i}' for i in range(WORKERS)]
        return "\n".join(lines) + "\n"


class RealPrometheus:
    """Started on a free loopback port with a generated config, in a process group of its own that
    `stop` ends. Without the binary the test skips (fails with ONCALL_REQUIRE_INTEGRATION=1)."""

    def __init__(self, workdir: Path, target: str) -> None:
        prometheus = require_binary("prometheus")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(
            f"global:\n  scrape_interval: {SCRAPE_SECONDS}s\n  evaluation_interval: {SCRAPE_SECONDS}s\n"
            f"scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{target}']\n"
        )
        self.log = (workdir / "prometheus.log").open("w")
        self.process = start_process(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"prometheus not ready after {READY_TIMEOUT_SECONDS}s; see {self.log.name}")

    def wait_for_data(self, query: str) -> None:
        """Until `query` has a sample: the first scrapes are in."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            body = httpx.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=2).json()
            if body["data"]["result"]:
                return
            time.sleep(0.2)
        raise TimeoutError(f"no data for {query} after {READY_TIMEOUT_SECONDS}s")

    def stop(self) -> None:
        try:
            end_process_group(self.process, timeout=10)
        finally:
            self.log.close()

    def __enter__(self) -> Self:
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
