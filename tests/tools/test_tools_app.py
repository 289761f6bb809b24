"""The tools service on a real nats-server (the session's, `nats_url`): requests in, ToolResults out,
never silence."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fakes.base import RecordedRequest, Response
from fakes.logs_fake import FakeLogs
from fakes.prometheus_fake import FakePrometheus
from faststream.nats import NatsBroker

from services.contracts import tools
from services.contracts.models import ToolRequest, ToolResult
from services.contracts.tools import ToolSpec
from services.runtime import metrics
from services.runtime.broker import make_broker
from services.runtime.bus import Bus
from services.runtime.demo import DEMO_BUGGY_FILE, DEMO_BUGGY_LINE, demo_log_lines, install_demo_code
from services.runtime.service import ServiceContext
from services.runtime.settings import Settings
from services.tools.app import answer, wire
from services.tools.log_compression import top_frame

NOW = datetime(2026, 11, 24, 6, 5, tzinfo=UTC)
PROM_VALUES = {
    'sum(rate(http_errors_total{service="inventory"}[1m]))': 4.6,
    'sum(rate(http_requests_total{service="inventory"}[1m]))': 19.8,
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


@asynccontextmanager
async def tools_service(nats_url: str, **env: Any) -> AsyncIterator[NatsBroker]:
    """The tools service wired on its own broker, as `oncall run tools` does; stopped after."""
    broker = make_broker(nats_url, "test-tools")
    parts = wire(ServiceContext(settings=Settings(**env), broker=broker, bus=Bus(broker)))
    await broker.start()
    try:
        yield broker
    finally:
        for hook in parts.on_stop:
            await hook()
        await broker.stop()


@pytest.fixture
async def service(
    nats_url: str, lb: FakeLogs, prom: FakePrometheus, code_dir: Path
) -> AsyncIterator[NatsBroker]:
    async with tools_service(nats_url, LB_URL=lb.url, PROM_URL=prom.url, CODE_DIR=str(code_dir)) as broker:
        yield broker


async def call(broker: NatsBroker, spec: ToolSpec, args: dict[str, Any]) -> ToolResult:
    reply = await broker.request(
        ToolRequest(args=args, incident_id="a1b2c3").to_bytes(), spec.subject, timeout=5
    )
    return ToolResult.model_validate_json(reply.body)


async def test_an_investigation_of_the_demo_incident(service: NatsBroker) -> None:
    logs, rate = await asyncio.gather(
        call(service, tools.FETCH_LOGS, {"service": "inventory", "seconds": 300}),
        call(service, tools.COMPUTE_ERROR_RATE, {"service": "inventory"}),
    )
    assert logs.ok and rate.ok
    assert logs.tool == "fetch_logs" and logs.elapsed_ms > 0
    assert len(json.dumps(logs.data)) <= tools.FETCH_LOGS.max_output_chars
    frame = top_frame(logs.data)
    assert frame is not None
    assert (frame["file"], frame["line"]) == (f"/app/{DEMO_BUGGY_FILE}", DEMO_BUGGY_LINE)
    assert rate.data["error_rate_percent"] == 23.23

    code = await call(service, tools.FETCH_CODE, {"file_path": frame["file"], "line": frame["line"]})

    assert code.ok
    assert code.data["path"] == DEMO_BUGGY_FILE
    assert f"> {DEMO_BUGGY_LINE} |" in code.data["code"]


@pytest.mark.parametrize(
    ("spec", "args", "words"),
    [
        (tools.FETCH_LOGS, {"servce": "inventory"}, ["servce", "service, seconds, limit, level"]),
        (tools.FETCH_LOGS, {"limit": 0}, ["limit", "greater than or equal to 1"]),
        (tools.FETCH_LOGS, {"level": "LOUD"}, ["LOUD"]),
        (tools.FETCH_CODE, {"line": 3}, ["file_path", "Field required"]),
        (tools.FETCH_CODE, {"file_path": "../../etc/passwd"}, [".."]),
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
            *(
                call(broker, spec, {"file_path": "a.py"} if spec is tools.FETCH_CODE else {})
                for spec in tools.READ_TOOLS
            )
        )
    messages = {r.tool: r.error.message for r in results if r.error and r.error.kind == "not_configured"}
    assert set(messages) == {spec.name for spec in tools.READ_TOOLS}
    assert "LB_URL" in messages["fetch_logs"]
    assert "PROM_URL" in messages["compute_error_rate"]
    assert "CODE_DIR" in messages["fetch_code_from_github"]


async def test_requests_are_answered_concurrently(nats_url: str) -> None:
    with FakeLogs(demo_log_lines(NOW)[-50:], delay_seconds=0.2) as slow:
        async with tools_service(nats_url, LB_URL=slow.url) as broker:
            before = metrics.tool_calls.labels(tool="fetch_logs", outcome="ok")._value.get()
            started = time.monotonic()
            results = await asyncio.gather(
                *(call(broker, tools.FETCH_LOGS, {"service": "inventory"}) for _ in range(20))
            )
            elapsed = time.monotonic() - started
    assert all(r.ok for r in results)
    assert elapsed < 20 * 0.2 / 4  # one at a time would take 4 s
    assert metrics.tool_calls.labels(tool="fetch_logs", outcome="ok")._value.get() - before == 20


async def test_an_unexpected_exception_becomes_internal() -> None:
    async def crash(_: Any) -> Any:
        raise KeyError("boom")

    result = await answer(tools.COMPUTE_ERROR_RATE, crash, ToolRequest(args={}).to_bytes(), 1.0)

    assert result.error is not None
    assert (result.error.kind, result.error.message) == ("internal", "KeyError: 'boom'")
