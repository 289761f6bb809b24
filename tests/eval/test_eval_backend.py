"""The eval backend: the load balancer's log tail and Prometheus as their contracts say
(README, docs/vendor-contracts.md §2), for the active scenario; and the counting model proxy."""

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.runtime.evaluation.backend import EvalBackend
from services.runtime.evaluation.scenarios import Scenario, load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "eval" / "scenarios"


@pytest.fixture
def upstream() -> Iterator[str]:
    """An OpenAI-compatible server that answers every request with a fixed usage."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            body = json.dumps({"choices": [], "usage": {"prompt_tokens": 120, "total_tokens": 150}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def scenario() -> Scenario:
    return load_scenario(SCENARIOS / "recovered-rollback-complete.toml")


def test_logs_and_metrics_of_the_active_scenario(scenario: Scenario, upstream: str) -> None:
    backend = EvalBackend(upstream).start()
    try:
        posted = datetime.now(UTC)
        start = posted + timedelta(seconds=scenario.alert.started)  # 15 minutes ago
        with httpx.Client(base_url=backend.url, timeout=5) as client:
            assert client.get("/lb/logs/tail").json() == []  # nothing active yet
            backend.activate(scenario, start, posted)

            lines = client.get("/lb/logs/tail", params={"seconds": 1200, "limit": 5000}).json()
            stamps = [datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")) for line in lines]
            assert stamps == sorted(stamps) and stamps[-1] <= datetime.now(UTC)
            assert stamps[0] >= posted - timedelta(seconds=1201)
            assert any("rolled back" in line["message"] for line in lines)
            assert len(client.get("/lb/logs/tail", params={"seconds": 1200, "limit": 10}).json()) == 10
            assert client.get("/lb/logs/tail", params={"seconds": 0}).status_code == 400

            errors = 'sum(rate(http_errors_total{service="recommendations"}[1m]))'
            requests = 'sum(rate(http_requests_total{service="recommendations"}[1m]))'
            now = client.get("/prom/api/v1/query", params={"query": errors}).json()
            assert now["status"] == "success" and now["data"]["result"][0]["value"][1] == "0.0"
            during = start.timestamp() + 60
            then = client.post("/prom/api/v1/query", data={"query": errors, "time": f"{during:.3f}"}).json()
            assert float(then["data"]["result"][0]["value"][1]) == pytest.approx(3.1)
            ratio = client.get(
                "/prom/api/v1/query", params={"query": f"{errors} / {requests}", "time": during}
            )
            assert float(ratio.json()["data"]["result"][0]["value"][1]) == pytest.approx(3.1 / 25)
            assert client.get("/prom/api/v1/query", params={"query": "up"}).json()["data"]["result"] == []
            assert client.get("/prom/api/v1/query", params={"query": ""}).json()["errorType"] == "bad_data"

            span = {
                "query": errors,
                "start": start.timestamp() - 60,
                "end": start.timestamp() + 300,
                "step": "30s",
            }
            matrix = client.get("/prom/api/v1/query_range", params=span).json()["data"]
            values = [float(v) for _, v in matrix["result"][0]["values"]]
            assert matrix["resultType"] == "matrix" and len(values) == 13
            assert values[0] == 0.0 and max(values) == pytest.approx(3.1) and values[-1] == 0.0

            answer = client.post("/openai/chat/completions", json={"model": "m", "messages": []})
            assert answer.status_code == 200 and answer.json()["usage"]["prompt_tokens"] == 120
            usage = backend.usage()
            assert (usage.calls, usage.prompt_tokens, usage.total_tokens) == (1, 120, 150)
            backend.activate(scenario, start, posted)  # the next scenario counts from zero
            assert backend.usage().calls == 0
    finally:
        backend.stop()


def test_without_a_model_the_proxy_answers_404(scenario: Scenario) -> None:
    backend = EvalBackend().start()
    try:
        backend.activate(scenario, datetime.now(UTC), datetime.now(UTC))
        answer = httpx.post(f"{backend.url}/openai/chat/completions", json={}, timeout=5)
        assert answer.status_code == 404 and backend.usage().calls == 0
        assert httpx.get(f"{backend.url}/nowhere", timeout=5).status_code == 404
    finally:
        backend.stop()
