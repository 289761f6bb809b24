"""The Prometheus client and the error rate, against the fake Prometheus HTTP API."""

from __future__ import annotations

import httpx
import pytest
from fakes.prometheus_fake import FakePrometheus

from services.tools.errors import BackendError
from services.tools.prometheus import ERRORS_QUERY, REQUESTS_QUERY, PrometheusClient, selector

INVENTORY_ERRORS = 'sum(rate(http_errors_total{service="inventory"}[1m]))'
INVENTORY_REQUESTS = 'sum(rate(http_requests_total{service="inventory"}[1m]))'


def test_query_templates_are_the_seeds_with_a_selector() -> None:
    assert ERRORS_QUERY.format(selector="") == "sum(rate(http_errors_total[1m]))"
    assert REQUESTS_QUERY.format(selector=selector("inventory")) == INVENTORY_REQUESTS
    assert selector('we"ird\\') == '{service="we\\"ird\\\\"}'


async def test_error_rate_of_a_service(http: httpx.AsyncClient) -> None:
    with FakePrometheus({INVENTORY_ERRORS: 4.6, INVENTORY_REQUESTS: 19.8}) as prom:
        result = await PrometheusClient(prom.url, http).error_rate("inventory")

    assert result == {
        "service": "inventory",
        "errors_per_second": 4.6,
        "requests_per_second": 19.8,
        "error_rate": pytest.approx(4.6 / 19.8),
        "error_rate_percent": 23.23,
        "queries": [INVENTORY_ERRORS, INVENTORY_REQUESTS],
        "note": None,
    }
    assert sorted(prom.queries) == sorted([INVENTORY_ERRORS, INVENTORY_REQUESTS])


async def test_error_rate_of_everything_has_no_selector(http: httpx.AsyncClient) -> None:
    with FakePrometheus(
        {"sum(rate(http_errors_total[1m]))": 1, "sum(rate(http_requests_total[1m]))": 10}
    ) as prom:
        result = await PrometheusClient(prom.url, http).error_rate(None)
    assert (result["service"], result["error_rate"], result["error_rate_percent"]) == (None, 0.1, 10.0)


async def test_the_two_queries_run_concurrently(http: httpx.AsyncClient) -> None:
    with FakePrometheus({INVENTORY_ERRORS: 1, INVENTORY_REQUESTS: 2}, delay_seconds=0.3) as prom:
        await PrometheusClient(prom.url, http).error_rate("inventory")
    first, second = sorted(prom.requests, key=lambda r: r.started_at)
    assert second.started_at < first.finished_at


@pytest.mark.parametrize(
    ("values", "errors", "requests", "rate"),
    [
        ({}, None, None, None),  # no series at all
        (
            {INVENTORY_ERRORS: 0.0, INVENTORY_REQUESTS: 0.0},
            0.0,
            0.0,
            None,
        ),  # no traffic: never divide by zero
        ({INVENTORY_REQUESTS: 5.0}, None, 5.0, 0.0),  # an error counter that never moved has no series
        ({INVENTORY_ERRORS: float("nan"), INVENTORY_REQUESTS: 5.0}, None, 5.0, 0.0),
    ],
)
async def test_missing_or_idle_series(
    values: dict[str, float],
    errors: float | None,
    requests: float | None,
    rate: float | None,
    http: httpx.AsyncClient,
) -> None:
    with FakePrometheus(values) as prom:
        result = await PrometheusClient(prom.url, http).error_rate("inventory")
    assert (result["errors_per_second"], result["requests_per_second"], result["error_rate"]) == (
        errors,
        requests,
        rate,
    )
    assert (result["note"] is None) == (rate is not None)


async def test_instant_reads_the_string_sample(http: httpx.AsyncClient) -> None:
    with FakePrometheus({"up": 1, "absent": None}) as prom:
        client = PrometheusClient(prom.url, http)
        assert await client.instant("up") == 1.0
        assert await client.instant("absent") is None


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


async def test_scalar_results() -> None:
    body = {"status": "success", "data": {"resultType": "scalar", "result": [1795500262.1, "0.5"]}}
    async with httpx.AsyncClient(transport=transport(200, body)) as mocked:
        assert await PrometheusClient("http://prom", mocked).instant("scalar(0.5)") == 0.5


async def test_a_slow_prometheus_is_a_timeout() -> None:
    async with httpx.AsyncClient(timeout=0.2) as http:
        with FakePrometheus({"up": 1}, delay_seconds=1.0) as prom, pytest.raises(BackendError) as raised:
            await PrometheusClient(prom.url, http).instant("up")
    assert raised.value.kind == "timeout"
