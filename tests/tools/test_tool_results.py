"""Typed tool results (services/contracts/tool_results.py): the diagnoser's ToolCaller gets them
from the real tools service over NATS, typed, and an error as a structured error; what the model
reads is the compact rendering the tools service measured."""

from __future__ import annotations

import json
import typing
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakes.logs_fake import FakeLogs
from fakes.prometheus_fake import FakePrometheus
from faststream.nats import NatsBroker
from pydantic import ValidationError
from tools_service import tools_service

from services.contracts import tools
from services.contracts.models import ToolResult
from services.contracts.tool_results import (
    CodeWindow,
    CommitsResult,
    ErrorRateResult,
    InstantSample,
    LogsResult,
    PrometheusResult,
    ToolOutput,
    model_json,
)
from services.diagnoser.evidence import result_for_model
from services.diagnoser.toolcalls import ToolCaller
from services.runtime.broker import make_broker
from services.runtime.demo import DEMO_BUGGY_FILE, DEMO_BUGGY_LINE, demo_log_lines, install_demo_code
from services.tools.log_compression import LogEntry, compress_logs, size_in_tokens
from services.tools.tokens import estimate_tokens

NOW = datetime(2026, 11, 24, 6, 5, tzinfo=UTC)
ERRORS = 'sum(rate(http_errors_total{service="inventory"}[1m]))'
REQUESTS = 'sum(rate(http_requests_total{service="inventory"}[1m]))'


def test_every_read_tool_has_its_typed_result() -> None:
    tagged = {model.model_fields["tool"].default: model for model in typing.get_args(ToolOutput)}
    assert set(tagged) == {spec.name for spec in tools.READ_TOOLS}


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_demo_code(tmp_path_factory.mktemp("code"))


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[FakeLogs, FakePrometheus]]:
    with FakeLogs(demo_log_lines(NOW)) as lb, FakePrometheus({ERRORS: 4.6, REQUESTS: 19.8}) as prom:
        yield lb, prom


@pytest.fixture
async def caller(
    nats_url: str, backends: tuple[FakeLogs, FakePrometheus], code_dir: Path
) -> AsyncIterator[ToolCaller]:
    """The diagnoser's ToolCaller, on a broker of its own, and the real tools service."""
    lb, prom = backends
    async with tools_service(nats_url, LB_URL=lb.url, PROM_URL=prom.url, CODE_DIR=str(code_dir)):
        broker: NatsBroker = make_broker(nats_url, "test-diagnoser-caller")
        await broker.start()
        try:
            yield ToolCaller(broker, 5.0)
        finally:
            await broker.stop()


async def test_the_diagnosers_tool_caller_gets_typed_results_over_nats(caller: ToolCaller) -> None:
    logs = await caller.call(tools.FETCH_LOGS.name, {"service": "inventory"}, "a1b2c3")
    found = logs.output(LogsResult)
    assert found is not None and found.top_frame is not None
    frame = found.top_frame
    assert (frame.file, frame.line, frame.language) == (f"/app/{DEMO_BUGGY_FILE}", DEMO_BUGGY_LINE, "python")
    assert found.stack_traces[0].frames[-1] == frame
    assert found.query is not None and found.query.lines_scanned > 0

    code = await caller.call(tools.FETCH_CODE.name, {"file_path": frame.file, "line": frame.line})
    window = code.output(CodeWindow)
    assert window is not None and window.path == DEMO_BUGGY_FILE
    assert (window.line, window.line_text) == (DEMO_BUGGY_LINE, dict(window.lines)[DEMO_BUGGY_LINE])
    assert window.line_text is not None and "entry" in window.line_text

    commits = (await caller.call(tools.RECENT_COMMITS.name, {"path": frame.file})).output(CommitsResult)
    assert commits is not None and commits.path == DEMO_BUGGY_FILE
    assert commits.commits and len(commits.commits[0].sha) == 12

    rates = await caller.call(tools.COMPUTE_ERROR_RATE.name, {"service": "inventory"})
    rate = rates.output(ErrorRateResult)
    assert rate is not None and rate.error_rate == pytest.approx(4.6 / 19.8)
    assert rate.queries == [ERRORS, REQUESTS]

    query = await caller.call(tools.QUERY_PROMETHEUS.name, {"query": ERRORS})
    answer = query.output(PrometheusResult)
    assert answer is not None and answer.series == [InstantSample(metric={}, value=4.6)]
    assert query.output(LogsResult) is None  # a result is of its own tool's type


async def test_a_typed_result_is_the_same_after_the_bus(caller: ToolCaller) -> None:
    """What the ToolCaller parsed re-encodes to itself: nothing is lost or reshaped on the way."""
    for spec, args in [
        (tools.FETCH_LOGS, {"service": "inventory"}),
        (tools.FETCH_CODE, {"file_path": DEMO_BUGGY_FILE, "line": DEMO_BUGGY_LINE}),
        (tools.COMPUTE_ERROR_RATE, {"service": "inventory"}),
        (tools.QUERY_PROMETHEUS, {"query": ERRORS, "range_minutes": 5}),
        (tools.RECENT_COMMITS, {"limit": 3}),
    ]:
        result = await caller.call(spec.name, args)
        assert result.ok and result.data is not None, result.error
        again = ToolResult.model_validate_json(result.to_bytes())
        assert again == result
        assert again.for_model() == result.data.for_model()


async def test_a_tool_error_arrives_as_a_structured_error(caller: ToolCaller) -> None:
    missing = await caller.call(tools.FETCH_CODE.name, {"file_path": "/app/billing/invoice.py", "line": 3})
    assert (missing.ok, missing.data, missing.output(CodeWindow)) == (False, None, None)
    assert missing.error is not None and missing.error.kind == "not_found"
    assert "billing/invoice.py" in missing.error.message
    assert json.loads(result_for_model(missing, 1000)) == {"error": missing.error.model_dump()}

    refused = await caller.call(tools.FETCH_LOGS.name, {"level": "LOUD"})
    assert refused.error is not None and refused.error.kind == "bad_request"
    assert "LOUD" in refused.error.message


def test_a_result_is_either_data_or_an_error() -> None:
    logs, error = LogsResult(), ToolResult.failure("fetch_logs", "internal", "boom").error
    with pytest.raises(ValidationError, match="ok without an error"):
        ToolResult(tool="fetch_logs", ok=True, data=logs, error=error)
    with pytest.raises(ValidationError, match="ok without an error"):
        ToolResult(tool="fetch_logs", ok=False)
    with pytest.raises(ValidationError, match="data of fetch_logs in a result of compute_error_rate"):
        ToolResult.success("compute_error_rate", logs)
    with pytest.raises(ValidationError):  # a result must say which tool's it is
        ToolResult.model_validate({"tool": "fetch_logs", "ok": True, "data": {"total_lines": 3}})


def test_what_the_model_reads_is_what_the_budget_measured() -> None:
    entries = [LogEntry.model_validate(line) for line in demo_log_lines(NOW)]
    result = compress_logs(entries, max_tokens=800)
    rendered = model_json(result.for_model())
    assert size_in_tokens(result) == estimate_tokens(rendered) <= 800
    envelope = ToolResult.success("fetch_logs", result)
    assert result_for_model(envelope, 100_000) == rendered
    assert "language" not in rendered  # on the bus, not in the model's context
    assert '"language": "python"' in json.dumps(json.loads(envelope.to_bytes()))


def test_the_model_reads_the_error_rate_once_as_a_percentage() -> None:
    """Given the ratio 0.123 beside 12.3, the local 1.5B answered "0.123% now"."""
    rate = ErrorRateResult(
        service="checkout", error_rate=0.123, error_rate_percent=12.3, requests_per_second=10.0
    )
    seen = rate.for_model()
    assert seen["error_rate"] == "12.3%" and "error_rate_percent" not in seen
    assert ErrorRateResult(error_rate=0.0004).for_model()["error_rate"] == "0.04%"
    assert "error_rate" not in ErrorRateResult(service="checkout", requests_per_second=0.0).for_model()
