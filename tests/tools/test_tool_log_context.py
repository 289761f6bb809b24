"""Every log line of a tool request names the incident of the ToolRequest (JSON logs), as the
lines of the durable consumers do: the tools service answers core requests, not a consumer."""

from __future__ import annotations

import logging
from typing import Any

from support.log_capture import json_lines, product_logs
from tools_service import answer, call, tools_service

from services.contracts import tools
from services.contracts.models import ToolRequest
from services.contracts.tool_results import LogsResult
from services.runtime.observability import current_incident
from services.tools.errors import BackendError

tool_log = logging.getLogger("oncall.tools.logs")


async def scan(_: Any) -> LogsResult:
    tool_log.info("scanned 1200 lines")  # a line logged by the tool itself, mid-request
    return LogsResult(total_lines=1200)


async def unreachable(_: Any) -> Any:
    raise BackendError("unavailable", "the load balancer did not answer")


async def test_the_tools_own_lines_carry_the_requests_incident() -> None:
    body = ToolRequest(args={}, incident_id="a1b2c3").to_bytes()
    with product_logs("INFO", "json") as out:
        ok = await answer(tools.FETCH_LOGS, scan, body, 5.0)
        failed = await answer(tools.FETCH_LOGS, unreachable, body, 5.0)
    assert ok.ok and not failed.ok
    lines = json_lines(out)
    assert [line["message"] for line in lines] == [
        "scanned 1200 lines",
        "fetch_logs failed (unavailable): the load balancer did not answer",
    ]
    assert {line["incident_id"] for line in lines} == {"a1b2c3"}
    assert current_incident.get() is None  # set for the request only


async def test_a_request_without_incident_logs_none() -> None:
    token = current_incident.set("left-over")
    try:
        with product_logs("INFO", "json") as out:
            await answer(tools.FETCH_LOGS, scan, ToolRequest(args={}).to_bytes(), 5.0)
        assert current_incident.get() == "left-over"  # restored after the request
    finally:
        current_incident.reset(token)
    (line,) = json_lines(out)
    assert "incident_id" not in line


async def test_over_nats_the_tool_line_carries_the_incident(nats_url: str) -> None:
    """As `oncall run tools` serves it: a core request with incident a1b2c3 (tools_service.call)."""
    with product_logs("INFO", "json") as out:
        async with tools_service(nats_url, "test-tools-log-context") as broker:  # no LB_URL, no LOKI_URL
            result = await call(broker, tools.FETCH_LOGS, {"service": "checkout"})
    assert result.error is not None and result.error.kind == "not_configured"
    (line,) = [line for line in json_lines(out) if line["logger"] == "oncall.tools"]
    assert line["message"].startswith("fetch_logs failed (not_configured)")
    assert line["incident_id"] == "a1b2c3"
