"""The Prometheus client against the fake Prometheus HTTP API: queries sent, answers and failures read."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import httpx
import pytest
from fakes.base import http_date, wall_clock
from fakes.prometheus_fake import FakePrometheus

from services.tools.errors import BackendError
from services.tools.prometheus import PrometheusClient

START = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
END = datetime(2026, 11, 24, 6, 10, tzinfo=UTC)


async def test_instant_reads_the_string_sample(http: httpx.AsyncClient) -> None:
    with FakePrometheus({"up": 1, "absent": None}) as prom:
        client = PrometheusClient(prom.url, http)
        assert await client.instant("up") == 1.0
        assert await client.instant("absent") is None


async def test_a_503_with_an_http_date_retry_after_is_retried_then(http: httpx.AsyncClient) -> None:
    retry_at = math.ceil(time.time()) + 1  # 1 to 2 s away: short enough to wait for inside the call
    with FakePrometheus({"up": 1}) as prom:
        prom.fail_next(503, "timeout", "query timed out", {"Retry-After": http_date(retry_at)})
        assert await PrometheusClient(prom.url, http).instant("up") == 1.0

    _, second = prom.requests
    assert wall_clock(second.started_at) >= retry_at - 0.05  # not before the date Prometheus named


async def test_a_503_without_retry_after_is_reported_at_once(http: httpx.AsyncClient) -> None:
    with FakePrometheus({"up": 1}) as prom:
        prom.fail_next(503, "unavailable", "TSDB not ready")
        with pytest.raises(BackendError) as raised:
            await PrometheusClient(prom.url, http).instant("up")

    assert (raised.value.kind, raised.value.transient, raised.value.status) == ("unavailable", True, 503)
    assert len(prom.requests) == 1


async def test_time_and_timeout_are_sent(http: httpx.AsyncClient) -> None:
    with FakePrometheus({"up": 1}) as prom:
        data = await PrometheusClient(prom.url, http, timeout_seconds=7).query("up", at=START)
    assert data["result"][0]["value"] == [START.timestamp(), "1"]
    (request,) = prom.requests
    assert (request.arg("time"), request.arg("timeout")) == (f"{START.timestamp():.3f}", "7s")


async def test_range_query(http: httpx.AsyncClient) -> None:
    with FakePrometheus({"up": 1}) as prom:
        data = await PrometheusClient(prom.url, http).query_range("up", START, END, 300)
    assert data["resultType"] == "matrix"
    assert [point[0] for point in data["result"][0]["values"]] == [
        START.timestamp(),
        START.timestamp() + 300,
        END.timestamp(),
    ]
    (request,) = prom.requests
    assert (request.path, request.arg("step")) == ("/api/v1/query_range", "300")


async def test_a_bad_query_carries_prometheus_error_text(http: httpx.AsyncClient) -> None:
    with FakePrometheus() as prom, pytest.raises(BackendError) as raised:
        await PrometheusClient(prom.url, http).instant("sum(rate(x[1m])")
    assert raised.value.kind == "bad_request"
    assert "unclosed left parenthesis" in raised.value.message


def transport(status: int, body: object = None, text: str = "") -> httpx.MockTransport:
    def respond(_: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status, text=text)

    return httpx.MockTransport(respond)


@pytest.mark.parametrize(
    ("status", "body", "text", "kind"),
    [
        (503, {"status": "error", "errorType": "timeout", "error": "query timed out"}, "", "timeout"),
        (
            422,
            {"status": "error", "errorType": "execution", "error": "many-to-many matching"},
            "",
            "bad_request",
        ),
        (502, None, "<html>bad gateway</html>", "unavailable"),
        (500, None, "", "unavailable"),
        (429, None, "slow down", "rate_limited"),
        (
            200,
            {
                "status": "success",
                "data": {
                    "resultType": "vector",
                    "result": [
                        {"metric": {"a": "1"}, "value": [1, "1"]},
                        {"metric": {"a": "2"}, "value": [1, "2"]},
                    ],
                },
            },
            "",
            "bad_request",
        ),
        (
            200,
            {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1]}]}},
            "",
            "unavailable",
        ),
        (200, None, "not json", "unavailable"),
    ],
)
async def test_failures_map_to_error_kinds(status: int, body: object, text: str, kind: str) -> None:
    async with httpx.AsyncClient(transport=transport(status, body, text)) as http:
        with pytest.raises(BackendError) as raised:
            await PrometheusClient("http://prom", http).instant("up")
    assert raised.value.kind == kind


async def test_scalar_results_and_warnings() -> None:
    body = {
        "status": "success",
        "data": {"resultType": "scalar", "result": [1795500262.1, "0.5"]},
        "warnings": ["PromQL info: metric might not be a counter"],
    }
    async with httpx.AsyncClient(transport=transport(200, body)) as mocked:
        client = PrometheusClient("http://prom", mocked)
        assert await client.instant("scalar(0.5)") == 0.5
        assert (await client.query("scalar(0.5)"))["warnings"] == body["warnings"]


async def test_a_slow_prometheus_is_a_timeout() -> None:
    async with httpx.AsyncClient(timeout=0.2) as http:
        with FakePrometheus({"up": 1}, delay_seconds=1.0) as prom, pytest.raises(BackendError) as raised:
            await PrometheusClient(prom.url, http).instant("up")
    assert raised.value.kind == "timeout"
