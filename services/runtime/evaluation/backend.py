"""The systems the product under evaluation investigates, served on 127.0.0.1 for the scenario
being run: the load balancer's log tail (`/lb/logs/tail`), Prometheus (`/prom/api/v1/query` and
`/query_range`, GET or POST), and, on the model path, a proxy to the OpenAI-compatible server
(`/openai/...`) that counts the model calls and prompt tokens of each scenario.

The contracts are those of README.md ("The load balancer's log tail") and
docs/vendor-contracts.md §2. A thread per request (the product asks several things at once).
"""

from __future__ import annotations

import bisect
import json
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from services.runtime.evaluation.scenarios import MetricSeries, Scenario

DEFAULT_TAIL_SECONDS = 300
DEFAULT_TAIL_LIMIT = 2000
MAX_TAIL_SECONDS = 7 * 86400
MAX_TAIL_LIMIT = 10_000
MAX_RANGE_POINTS = 11_000  # Prometheus' own limit on points per series
PROXY_TIMEOUT_SECONDS = 300.0
_HOP_HEADERS = {"host", "content-length", "connection", "accept-encoding", "transfer-encoding"}


@dataclass
class ModelUsage:
    """What the model path cost while one scenario was active."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    failures: int = 0


@dataclass
class Active:
    scenario: Scenario
    alert_start: datetime
    stamps: list[float]
    lines: list[dict[str, str]]
    usage: ModelUsage = field(default_factory=ModelUsage)


class EvalBackend:
    """Serves the active scenario; `activate` switches to the next one."""

    def __init__(self, model_upstream: str | None = None) -> None:
        self.model_upstream = model_upstream.rstrip("/") if model_upstream else None
        self._active: Active | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="eval-backend", daemon=True)
        self._http = httpx.Client(timeout=PROXY_TIMEOUT_SECONDS) if self.model_upstream else None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> EvalBackend:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._http is not None:
            self._http.close()

    def activate(self, scenario: Scenario, alert_start: datetime, posted: datetime) -> None:
        lines = scenario.log_lines(alert_start, posted)
        active = Active(scenario, alert_start, [stamp for stamp, _ in lines], [line for _, line in lines])
        with self._lock:
            self._active = active

    def usage(self) -> ModelUsage:
        with self._lock:
            return self._active.usage if self._active else ModelUsage()

    def active(self) -> Active | None:
        with self._lock:
            return self._active

    # --- the load balancer ------------------------------------------------------------------

    def tail(self, seconds: int, limit: int, now: float) -> list[dict[str, str]]:
        active = self.active()
        if active is None:
            return []
        first = bisect.bisect_left(active.stamps, now - seconds)
        last = bisect.bisect_right(active.stamps, now)
        return active.lines[max(first, last - limit) : last]

    # --- Prometheus -------------------------------------------------------------------------

    def series_for(self, query: str) -> MetricSeries | None:
        """Which of the scenario's series a PromQL query asks for: the scenario's own `extra` series
        first (every `match` text in the query), then errors / requests (their ratio when the query
        has both), then latency (a query about duration or latency)."""
        active = self.active()
        if active is None:
            return None
        scenario = active.scenario
        for extra in scenario.extra_metrics:
            if all(text in query for text in extra.match):
                return extra
        errors = "http_errors_total" in query
        requests = "http_requests_total" in query
        if errors and requests:
            return _ratio(scenario.errors, scenario.requests)
        if errors:
            return scenario.errors
        if requests:
            return scenario.requests or MetricSeries(((-86400.0, 18.0),))
        if any(word in query for word in ("duration", "latency")):
            return scenario.latency_p90
        return None

    def instant(self, query: str, at: float) -> dict[str, Any]:
        series, active = self.series_for(query), self.active()
        value = series.value_at(at - active.alert_start.timestamp()) if series and active else None
        result = [] if value is None else [{"metric": _labels(series), "value": [round(at, 3), _text(value)]}]
        return {"resultType": "vector", "result": result}

    def range(self, query: str, start: float, end: float, step: float) -> dict[str, Any]:
        series, active = self.series_for(query), self.active()
        values = []
        if series is not None and active is not None:
            t0 = active.alert_start.timestamp()
            points = min(int((end - start) / step) + 1, MAX_RANGE_POINTS)
            for i in range(points):
                moment = start + i * step
                value = series.value_at(moment - t0)
                if value is not None:
                    values.append([round(moment, 3), _text(value)])
        result = [{"metric": _labels(series), "values": values}] if values and series else []
        return {"resultType": "matrix", "result": result}

    # --- the model proxy --------------------------------------------------------------------

    def forward(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
        if self._http is None or self.model_upstream is None:
            return 404, b'{"error": {"message": "no model upstream"}}', "application/json"
        active = self.active()
        sent = {name: value for name, value in headers.items() if name.lower() not in _HOP_HEADERS}
        try:
            response = self._http.request(method, self.model_upstream + path, content=body, headers=sent)
        except httpx.HTTPError as exc:
            if active is not None:
                active.usage.failures += 1
            return 502, json.dumps({"error": {"message": f"eval proxy: {exc}"}}).encode(), "application/json"
        if active is not None:
            _count(active.usage, response)
        return (
            response.status_code,
            response.content,
            response.headers.get("content-type", "application/json"),
        )


def _count(usage: ModelUsage, response: httpx.Response) -> None:
    usage.calls += 1
    if not response.is_success:
        usage.failures += 1
        return
    try:
        counted = response.json().get("usage") or {}
    except (ValueError, AttributeError):
        return
    usage.prompt_tokens += int(counted.get("prompt_tokens") or 0)
    usage.completion_tokens += int(counted.get("completion_tokens") or 0)
    usage.total_tokens += int(counted.get("total_tokens") or 0)


def _ratio(errors: MetricSeries | None, requests: MetricSeries | None) -> MetricSeries | None:
    if requests is None:
        return None
    moments = sorted({at for at, _ in requests.steps} | {at for at, _ in (errors.steps if errors else ())})
    steps = []
    for at in moments:
        total = requests.value_at(at)
        failed = errors.value_at(at) if errors else None
        steps.append((at, None if not total else (failed or 0.0) / total))
    return MetricSeries(tuple(steps))


def _labels(series: MetricSeries | None) -> dict[str, str]:
    return dict(series.labels) if series is not None else {}


def _text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


# --- HTTP --------------------------------------------------------------------------------------


def _number(params: dict[str, str], name: str, default: float | None = None) -> float:
    raw = params.get(name)
    if raw is None:
        if default is None:
            raise ValueError(f"missing parameter {name!r}")
        return default
    try:
        return float(raw)
    except ValueError:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()


def _step(raw: str | None) -> float:
    if raw is None:
        raise ValueError("missing parameter 'step'")
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if raw.endswith(unit) and raw[: -len(unit)].replace(".", "", 1).isdigit():
            return float(raw[: -len(unit)]) * units[unit]
    return float(raw)


def _handler_for(backend: EvalBackend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def do_GET(self) -> None:
            self._serve(b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self._serve(self.rfile.read(length) if length else b"")

        def _serve(self, body: bytes) -> None:
            url = urlsplit(self.path)
            if url.path.startswith("/openai/"):
                headers = {name: value for name, value in self.headers.items()}
                suffix = self.path[len("/openai") :]
                status, content, content_type = backend.forward(self.command, suffix, body, headers)
                self._send(status, content, content_type)
                return
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if body and "form" in (self.headers.get("content-type") or ""):
                params.update({k: v[-1] for k, v in parse_qs(body.decode()).items()})
            now = time.time()
            try:
                if url.path == "/lb/logs/tail" and self.command == "GET":
                    seconds = int(params.get("seconds", DEFAULT_TAIL_SECONDS))
                    limit = int(params.get("limit", DEFAULT_TAIL_LIMIT))
                    if not (1 <= seconds <= MAX_TAIL_SECONDS and 1 <= limit <= MAX_TAIL_LIMIT):
                        raise ValueError("seconds or limit out of range")
                    self._json(200, backend.tail(seconds, limit, now))
                elif url.path == "/prom/api/v1/query":
                    query = params.get("query", "")
                    if not query.strip():
                        raise ValueError("1:1: parse error: no expression found in input")
                    self._json(
                        200,
                        {"status": "success", "data": backend.instant(query, _number(params, "time", now))},
                    )
                elif url.path == "/prom/api/v1/query_range":
                    query = params.get("query", "")
                    start, end = _number(params, "start"), _number(params, "end")
                    step = _step(params.get("step"))
                    if not query.strip() or step <= 0 or end < start:
                        raise ValueError("invalid query, range or step")
                    self._json(200, {"status": "success", "data": backend.range(query, start, end, step)})
                else:
                    self._json(404, {"error": f"no route {url.path}"})
            except ValueError as exc:
                error = f"invalid parameter: {exc}"
                if url.path.startswith("/prom/"):
                    self._json(400, {"status": "error", "errorType": "bad_data", "error": error})
                else:
                    self._json(400, {"error": error})

        def _json(self, status: int, payload: Any) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json")

        def _send(self, status: int, content: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

    return Handler
