"""The tools service on a real nats-server (the session's, `nats_url`): requests in, ToolResults out,
never silence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fakes.base import RecordedRequest, Response, _Server
from fakes.logs_fake import FakeLogs
from fakes.prometheus_fake import FakePrometheus
from faststream.nats import NatsBroker
from tools_service import answer, call, tools_service

from services.contracts import tools
from services.contracts.models import ToolRequest, ToolResult
from services.contracts.tool_results import CodeWindow, ErrorRateResult, LogsResult
from services.contracts.tools import ToolSpec
from services.runtime.demo import DEMO_BUGGY_FILE, DEMO_BUGGY_LINE, demo_log_lines, install_demo_code
from services.tools import metrics
from services.tools.log_compression import size_in_tokens, top_frame

NOW = datetime(2026, 11, 24, 6, 5, tzinfo=UTC)
PROM_VALUES = {
    'sum(rate(http_errors_total{service="inventory"}[1m]))': 4.6,
    'sum(rate(http_requests_total{service="inventory"}[1m]))': 19.8,
}


REQUIRED_ARGS: dict[str, dict[str, Any]] = {
    tools.FETCH_CODE.name: {"file_path": "a.py"},
    tools.QUERY_PROMETHEUS.name: {"query": "up"},
}


class FailingLogs(FakeLogs):
    def handle(self, req: RecordedRequest) -> Response:
        return 500, {"Content-Type": "text/plain"}, b"upstream exploded"


@pytest.fixture(scope="module")
def lb() -> Iterator[FakeLogs]:
    with FakeLogs(demo_log_lines(NOW)) as fake:
        yield fake


@pytest.fixture(scope="module")
def prom() -> Iterator[FakePrometheus]:
    with FakePrometheus(PROM_VALUES) as fake:
        yield fake


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_demo_code(tmp_path_factory.mktemp("code"))


@pytest.fixture
async def service(
    nats_url: str, lb: FakeLogs, prom: FakePrometheus, code_dir: Path
) -> AsyncIterator[NatsBroker]:
    async with tools_service(nats_url, LB_URL=lb.url, PROM_URL=prom.url, CODE_DIR=str(code_dir)) as broker:
        yield broker


def timed(tool: str) -> tuple[float, float]:
    """How many `tool` requests `oncall_tool_seconds` has timed, and their total seconds."""
    labels = {"tool": tool}
    count = metrics.REGISTRY.get_sample_value("oncall_tool_seconds_count", labels) or 0.0
    return count, metrics.REGISTRY.get_sample_value("oncall_tool_seconds_sum", labels) or 0.0


async def test_an_investigation_of_the_demo_incident(service: NatsBroker) -> None:
    timed_before = timed("fetch_logs")
    logs, rate = await asyncio.gather(
        call(service, tools.FETCH_LOGS, {"service": "inventory", "seconds": 300}),
        call(service, tools.COMPUTE_ERROR_RATE, {"service": "inventory"}),
    )
    found, rates = logs.output(LogsResult), rate.output(ErrorRateResult)
    assert found is not None and rates is not None  # typed results, back from the bus
    assert logs.tool == "fetch_logs"
    count, seconds = timed("fetch_logs")
    assert count == timed_before[0] + 1 and seconds > timed_before[1]  # how long it took: a metric
    assert size_in_tokens(found) <= 2000  # ONCALL_TOOL_MAX_TOKENS' default
    frame = found.top_frame
    assert frame is not None and frame == top_frame(found.stack_traces)
    assert (frame.file, frame.line, frame.language) == (f"/app/{DEMO_BUGGY_FILE}", DEMO_BUGGY_LINE, "python")
    assert rates.error_rate_percent == 23.23

    code = await call(service, tools.FETCH_CODE, {"file_path": frame.file, "line": frame.line})

    window = code.output(CodeWindow)
    assert window is not None
    assert window.path == DEMO_BUGGY_FILE
    assert window.line_text == '    available = entry["available"] - entry["reserved"]'
    assert f"> {DEMO_BUGGY_LINE} |" in window.for_model()["code"]


@pytest.mark.parametrize(
    ("spec", "args", "words"),
    [
        (tools.FETCH_LOGS, {"servce": "inventory"}, ["servce", "service, seconds, limit, level, starts_at"]),
        (tools.FETCH_LOGS, {"starts_at": "yesterday"}, ["starts_at", "datetime"]),
        (tools.FETCH_LOGS, {"limit": 0}, ["limit", "greater than or equal to 1"]),
        (tools.FETCH_LOGS, {"level": "LOUD"}, ["LOUD"]),
        (tools.FETCH_CODE, {"line": 3}, ["file_path", "Field required"]),
        (tools.FETCH_CODE, {"file_path": "../../etc/passwd"}, [".."]),
        (tools.QUERY_PROMETHEUS, {"query": ""}, ["query", "at least 1 character"]),
        (tools.QUERY_PROMETHEUS, {"query": "sum(rate(x[1m])"}, ["unclosed left parenthesis"]),
        (tools.RECENT_COMMITS, {"limit": 500}, ["limit", "less than or equal to 50"]),
        (tools.RECENT_COMMITS, {"path": "../secrets"}, [".."]),
    ],
)
async def test_bad_arguments_are_named(
    service: NatsBroker, spec: ToolSpec, args: dict[str, Any], words: list[str]
) -> None:
    result = await call(service, spec, args)
    assert not result.ok and result.error is not None
    assert result.error.kind == "bad_request"
    for word in words:
        assert word in result.error.message


async def test_a_body_that_is_not_a_request(service: NatsBroker) -> None:
    reply = await service.request(b"not json", tools.COMPUTE_ERROR_RATE.subject, timeout=5)
    result = ToolResult.model_validate_json(reply.body)
    assert result.error is not None and result.error.kind == "bad_request"
    assert "ToolRequest" in result.error.message


async def test_missing_file_is_not_found(service: NatsBroker) -> None:
    result = await call(service, tools.FETCH_CODE, {"file_path": "/app/billing/invoice.py", "line": 3})
    assert result.error is not None and result.error.kind == "not_found"


async def test_backend_500_is_unavailable(nats_url: str) -> None:
    with FailingLogs() as broken:
        async with tools_service(nats_url, LB_URL=broken.url) as broker:
            result = await call(broker, tools.FETCH_LOGS, {})
    assert result.error is not None
    assert result.error.kind == "unavailable"
    assert "HTTP 500" in result.error.message and "upstream exploded" in result.error.message


async def test_a_slow_backend_times_out(nats_url: str) -> None:
    with FakeLogs(delay_seconds=2.0) as slow:
        async with tools_service(nats_url, LB_URL=slow.url, ONCALL_TOOL_TIMEOUT_SECONDS=0.3) as broker:
            started = time.monotonic()
            result = await call(broker, tools.FETCH_LOGS, {})
    assert result.error is not None and result.error.kind == "timeout"
    assert time.monotonic() - started < 1.5


async def test_nothing_configured_says_what_to_set(nats_url: str) -> None:
    async with tools_service(nats_url) as broker:
        results = await asyncio.gather(
            *(call(broker, spec, REQUIRED_ARGS.get(spec.name, {})) for spec in tools.READ_TOOLS)
        )
    messages = {r.tool: r.error.message for r in results if r.error and r.error.kind == "not_configured"}
    assert set(messages) == {spec.name for spec in tools.READ_TOOLS}
    assert "LB_URL" in messages["fetch_logs"] and "LOKI_URL" in messages["fetch_logs"]
    assert "PROM_URL" in messages["compute_error_rate"]
    assert "PROM_URL" in messages["query_prometheus"]
    assert "CODE_DIR" in messages["fetch_code_from_github"]
    assert "CODE_DIR" in messages["recent_commits"]


async def test_fifty_requests_waiting_on_a_slow_backend_are_served_at_once(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each request waits 1 s on the load balancer; one process has all 50 waiting at once (1 s,
    not 50). The wait is long so that starting 50 requests on a busy 2-core CI machine (over
    200 ms there) cannot end the first before the last has started."""
    # socketserver's listen backlog of 5 drops most of 50 simultaneous connects (the client
    # retries after 1 s); a real load balancer listens with a deep backlog.
    monkeypatch.setattr(_Server, "request_queue_size", 128)
    with FakeLogs(demo_log_lines(NOW)[-10:], delay_seconds=1.0) as slow:
        # 64 workers: all 50 in one wave (the default 32 takes two waves).
        async with tools_service(nats_url, LB_URL=slow.url, ONCALL_TOOL_MAX_WORKERS=64) as broker:
            calls = [call(broker, tools.FETCH_LOGS, {"service": "inventory"}) for _ in range(50)]
            await asyncio.gather(*calls)  # warm-up: the connections to the load balancer are open
            before = metrics.tool_calls.labels(tool="fetch_logs", outcome="ok")._value.get()
            started = time.monotonic()
            results = await asyncio.gather(
                *(call(broker, tools.FETCH_LOGS, {"service": "inventory"}) for _ in range(50))
            )
            elapsed = time.monotonic() - started
    assert all(r.ok for r in results)
    # All 50 were waiting on the backend at the same moment: served at once, not in turn.
    last_start = max(r.started_at for r in slow.requests[-50:])
    first_end = min(r.finished_at for r in slow.requests[-50:])
    assert last_start < first_end
    # One at a time would take 50 s (bench/tools.py has the latency figures).
    assert elapsed < 10.0
    assert metrics.tool_calls.labels(tool="fetch_logs", outcome="ok")._value.get() - before == 50


async def test_the_token_budget_is_a_setting(nats_url: str, lb: FakeLogs) -> None:
    async with tools_service(nats_url, LB_URL=lb.url, ONCALL_TOOL_MAX_TOKENS=600) as broker:
        result = await call(broker, tools.FETCH_LOGS, {"service": "inventory"})
    found = result.output(LogsResult)
    assert found is not None and found.omitted is not None and found.top_frame is not None
    assert size_in_tokens(found) <= 600
    assert "600 tokens" in found.omitted
    assert found.top_frame.line == DEMO_BUGGY_LINE  # what matters most is kept


async def test_replicas_share_the_requests_through_the_queue_group(nats_url: str) -> None:
    with FakeLogs(demo_log_lines(NOW)[-20:]) as first_lb, FakeLogs(demo_log_lines(NOW)[-20:]) as second_lb:
        async with (
            tools_service(nats_url, "tools-1", LB_URL=first_lb.url) as first,
            tools_service(nats_url, "tools-2", LB_URL=second_lb.url),
        ):
            results = await asyncio.gather(*(call(first, tools.FETCH_LOGS, {}) for _ in range(40)))
    assert all(r.ok for r in results)
    served = len(first_lb.requests), len(second_lb.requests)
    assert sum(served) == 40  # each request answered once, by one replica
    assert min(served) >= 5  # both replicas took a share


async def test_an_unexpected_exception_becomes_internal() -> None:
    async def crash(_: Any) -> Any:
        raise KeyError("boom")

    result = await answer(tools.COMPUTE_ERROR_RATE, crash, ToolRequest(args={}).to_bytes(), 1.0)

    assert result.error is not None
    assert (result.error.kind, result.error.message) == ("internal", "KeyError: 'boom'")
