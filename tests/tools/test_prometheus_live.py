"""compute_error_rate and query_prometheus against a real Prometheus scraping the seed's counters.

One Prometheus for the module (started by the test, scrape interval 1 s). Its series are a few
seconds old throughout, so with the seed's 1-minute rate window they are *young*; windows of
3 s (configurable templates) are full after a few scrapes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from faststream.nats import NatsBroker
from prometheus_server import RATES, WORKERS, CounterExporter, RealPrometheus
from tools_service import call, tools_service

from services.contracts import tools
from services.contracts.tool_results import ErrorRateResult, InstantSample, PrometheusResult
from services.contracts.tools import QueryPrometheusArgs
from services.tools.error_rate import RateQueries, error_rate
from services.tools.errors import BackendError
from services.tools.prometheus import PrometheusClient
from services.tools.prometheus_query import query_prometheus
from services.tools.settings import DEFAULT_ERRORS_QUERY, DEFAULT_REQUESTS_QUERY

SEED = RateQueries(DEFAULT_ERRORS_QUERY, DEFAULT_REQUESTS_QUERY)
SHORT = RateQueries(
    "sum(rate(http_errors_total{selector}[3s]))", "sum(rate(http_requests_total{selector}[3s]))"
)
FULL_WINDOW_TIMEOUT_SECONDS = 15


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealPrometheus]:
    """Every test here uses it: without the binary they all skip (tests/support/binaries.py)."""
    with CounterExporter() as exporter:
        target = exporter.url.removeprefix("http://")
        with RealPrometheus(Path(tmp_path_factory.mktemp("prometheus")), target) as server:
            server.wait_for_data('sum(rate(http_requests_total{service="checkout"}[1m]))')
            yield server


@pytest.fixture
async def client(prometheus: RealPrometheus) -> AsyncIterator[PrometheusClient]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield PrometheusClient(prometheus.url, http, timeout_seconds=5)


def now() -> datetime:
    return datetime.now(UTC)


async def test_a_series_younger_than_the_rate_window_is_flagged(client: PrometheusClient) -> None:
    result = await error_rate(client, SEED, "checkout", now())

    assert result.young is True
    assert result.series_age_seconds <= 60
    assert "young series" in result.note
    assert result.queries[0] == 'sum(rate(http_errors_total{service="checkout"}[1m]))'
    assert result.trend.error_rate_percent[0] is None  # ten minutes ago there was no series


async def full_window(client: PrometheusClient, service: str) -> dict[str, object]:
    """compute_error_rate with 3 s windows, once the series are older than the window."""
    deadline = time.monotonic() + FULL_WINDOW_TIMEOUT_SECONDS
    while True:
        result = await error_rate(client, SHORT, service, now())
        if result.young is False or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.5)


async def test_the_error_rate_of_a_service_from_its_counters(client: PrometheusClient) -> None:
    requests, errors = RATES["checkout"]
    result = await full_window(client, "checkout")

    assert result.young is False
    assert result.requests_per_second == pytest.approx(requests, rel=0.35)
    assert result.error_rate == pytest.approx(errors / requests, abs=0.06)
    assert result.note is None


async def test_a_service_without_errors_and_one_without_traffic(client: PrometheusClient) -> None:
    search = await full_window(client, "search")
    idle = await full_window(client, "idle")

    assert (search.errors_per_second, search.error_rate) == (None, 0.0)  # no errors series at all
    assert (idle.requests_per_second, idle.error_rate, idle.error_rate_percent) == (0.0, None, None)
    assert "error rate is undefined" in str(idle.note)


async def test_query_prometheus_instant_by_service(client: PrometheusClient) -> None:
    args = QueryPrometheusArgs(query="sum by (service) (rate(http_requests_total[5s]))")

    result = await query_prometheus(client, args, 2000, now())

    assert result.result_type == "vector"
    assert [s.metric["service"] for s in result.series] == ["checkout", "search", "idle"]
    assert result.series[0].value == pytest.approx(RATES["checkout"][0], rel=0.35)


async def test_query_prometheus_range(client: PrometheusClient) -> None:
    args = QueryPrometheusArgs(query='sum(http_requests_total{service="checkout"})', range_minutes=2)

    result = await query_prometheus(client, args, 2000, now())

    (series,) = result.series
    assert (result.step_seconds, len(series.values)) == (3, 41)
    assert series.values[0] is None  # two minutes ago Prometheus was not running
    assert series.values[-1] > 100


async def test_query_prometheus_caps_many_series(client: PrometheusClient) -> None:
    result = await query_prometheus(client, QueryPrometheusArgs(query="worker_busy"), 500, now())

    assert result.series_total == WORKERS
    assert 0 < len(result.series) < WORKERS
    assert result.series[0].metric["worker"] == f"w{WORKERS - 1:02d}"  # the largest first
    assert result.omitted.startswith(f"{WORKERS - len(result.series)} of {WORKERS} series left out")


async def test_prometheus_rejects_a_bad_query(client: PrometheusClient) -> None:
    with pytest.raises(BackendError) as raised:
        await query_prometheus(client, QueryPrometheusArgs(query="sum(rate(x[1m])"), 2000, now())
    assert raised.value.kind == "bad_request"
    assert "parse error" in raised.value.message


@pytest.fixture
async def service(nats_url: str, prometheus: RealPrometheus) -> AsyncIterator[NatsBroker]:
    settings = {
        "PROM_URL": prometheus.url,
        "ONCALL_PROM_ERRORS_QUERY": SHORT.errors,
        "ONCALL_PROM_REQUESTS_QUERY": SHORT.requests,
    }
    async with tools_service(nats_url, **settings) as broker:
        yield broker


async def test_both_tools_over_the_bus(service: NatsBroker) -> None:
    rate = await call(service, tools.COMPUTE_ERROR_RATE, {"service": "checkout"})
    query = await call(service, tools.QUERY_PROMETHEUS, {"query": "count(worker_busy)"})

    rates, answer = rate.output(ErrorRateResult), query.output(PrometheusResult)
    assert rates is not None and answer is not None  # typed, back from the bus
    assert rates.queries[0] == 'sum(rate(http_errors_total{service="checkout"}[3s]))'
    assert rates.error_rate == pytest.approx(0.2, abs=0.06)
    assert answer.series == [InstantSample(metric={}, value=WORKERS)]
