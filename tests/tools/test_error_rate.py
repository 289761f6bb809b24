"""compute_error_rate against the fake Prometheus, and its pure parts (templates, windows, young series)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fakes.base import RecordedRequest, Response
from fakes.prometheus_fake import FakePrometheus

from services.tools.error_rate import (
    RateQueries,
    Trend,
    age_seconds,
    error_rate,
    rate_window_seconds,
    render,
)
from services.tools.prometheus import PrometheusClient
from services.tools.settings import DEFAULT_ERRORS_QUERY, DEFAULT_REQUESTS_QUERY

NOW = datetime(2026, 11, 24, 6, 5, tzinfo=UTC)
SEED = RateQueries(DEFAULT_ERRORS_QUERY, DEFAULT_REQUESTS_QUERY)
INVENTORY_ERRORS = 'sum(rate(http_errors_total{service="inventory"}[1m]))'
INVENTORY_REQUESTS = 'sum(rate(http_requests_total{service="inventory"}[1m]))'


def test_templates_are_the_seeds_with_the_service() -> None:
    assert render(DEFAULT_ERRORS_QUERY, None) == "sum(rate(http_errors_total[1m]))"
    assert render(DEFAULT_REQUESTS_QUERY, "inventory") == INVENTORY_REQUESTS
    assert (
        render(DEFAULT_ERRORS_QUERY, 'we"ird\\') == 'sum(rate(http_errors_total{service="we\\"ird\\\\"}[1m]))'
    )


def test_templates_with_their_own_matchers() -> None:
    template = 'sum(rate(http_server_requests_seconds_count{status=~"5..",{matchers}}[5m]))'
    assert render(template, "checkout") == (
        'sum(rate(http_server_requests_seconds_count{status=~"5..",service="checkout"}[5m]))'
    )
    assert render(template, None) == 'sum(rate(http_server_requests_seconds_count{status=~"5..",}[5m]))'


@pytest.mark.parametrize(
    ("query", "seconds"),
    [
        ("sum(rate(x[1m]))", 60),
        ("sum(rate(x[5m])) / sum(rate(y[1m]))", 300),
        ("max_over_time(rate(x[30s])[10m:1m])", 600),
        ("sum(rate(x[1m30s]))", 90),
        ("sum(x)", 60),
    ],
)
def test_rate_window_is_the_longest_range(query: str, seconds: float) -> None:
    assert rate_window_seconds(query) == seconds


async def test_error_rate_of_a_service(http: httpx.AsyncClient) -> None:
    with FakePrometheus({INVENTORY_ERRORS: 4.6, INVENTORY_REQUESTS: 19.8}) as prom:
        result = await error_rate(PrometheusClient(prom.url, http), SEED, "inventory", NOW)

    view = result.for_model()  # what the model reads
    trend = view.pop("trend")
    assert view == {
        "service": "inventory",
        "errors_per_second": 4.6,
        "requests_per_second": 19.8,
        "error_rate": "23.2%",  # 4.6 / 19.8, once, as a percentage
        "window_seconds": 60,
        "young": False,
        "queries": [INVENTORY_ERRORS, INVENTORY_REQUESTS],
    }
    assert result.error_rate == pytest.approx(4.6 / 19.8)  # the ratio stays on the bus
    assert trend == {"start": "2026-11-24T05:55:00Z", "step_seconds": 30, "error_rate_percent": [23.23] * 21}
    # Two range queries and no instant ones: the trend's last point is the current rate.
    assert sorted(prom.queries) == sorted([INVENTORY_ERRORS, INVENTORY_REQUESTS])
    assert {r.path for r in prom.requests} == {"/api/v1/query_range"}


async def test_both_queries_run_at_once(http: httpx.AsyncClient) -> None:
    with FakePrometheus({INVENTORY_ERRORS: 1, INVENTORY_REQUESTS: 2}, delay_seconds=0.3) as prom:
        await error_rate(PrometheusClient(prom.url, http), SEED, "inventory", NOW)
    last_start = max(r.started_at for r in prom.requests)
    assert last_start < min(r.finished_at for r in prom.requests)


@pytest.mark.parametrize(
    ("values", "errors", "requests", "rate"),
    [
        ({}, None, None, None),  # no series at all
        ({INVENTORY_ERRORS: 0.0, INVENTORY_REQUESTS: 0.0}, 0.0, 0.0, None),  # no traffic: no division by 0
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
        result = await error_rate(PrometheusClient(prom.url, http), SEED, "inventory", NOW)
    assert (result.errors_per_second, result.requests_per_second, result.error_rate) == (
        errors,
        requests,
        rate,
    )
    assert (result.note is None) == (rate is not None)
    assert result.young is False


class NoRangeQueries(FakePrometheus):
    """A Prometheus-compatible server (or proxy) that only knows instant queries, like the demo's."""

    def handle(self, req: RecordedRequest) -> Response:
        if req.path == "/api/v1/query_range":
            return 404, {"Content-Type": "text/plain"}, b"404 page not found\n"
        return super().handle(req)


async def test_without_range_queries_the_rate_stands(http: httpx.AsyncClient) -> None:
    with NoRangeQueries({INVENTORY_ERRORS: 1, INVENTORY_REQUESTS: 4}) as prom:
        result = await error_rate(PrometheusClient(prom.url, http), SEED, "inventory", NOW)
    assert (result.error_rate, result.young, result.trend) == (0.25, None, None)
    assert [r.path for r in prom.requests].count("/api/v1/query") == 2  # asked again, as instant queries
    assert result.note.startswith("no trend, so the series' age is unknown")


def trend(errors: list[float | None], requests: list[float | None], step: float = 30) -> Trend:
    return Trend(NOW - timedelta(seconds=step * (len(errors) - 1)), step, errors, requests)


def test_age_is_counted_from_the_first_point_with_data() -> None:
    assert age_seconds([None, None, 1.0, 2.0], 30) == 30
    assert age_seconds([1.0, None, 2.0], 30) == 60
    assert age_seconds([None, None], 30) is None


def test_an_errors_series_born_with_the_incident_is_young() -> None:
    young, age, note = trend([None] * 20 + [0.4], [10.0] * 21).young_note(60)
    assert (young, age) == (True, 30)
    assert note is not None and "errors has existed for at most 30s" in note


def test_series_older_than_the_window_are_not_young() -> None:
    assert trend([None] * 18 + [0.4] * 3, [10.0] * 21).young_note(60) == (False, None, None)
    assert trend([None] * 21, [10.0] * 21).young_note(60) == (False, None, None)  # no errors at all


def test_the_trend_is_the_ratio_per_point() -> None:
    assert trend([None, 1.0, 2.0], [None, 0.0, 8.0]).result().error_rate_percent == [None, None, 25.0]
