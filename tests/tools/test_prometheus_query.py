"""query_prometheus: shaping and caps of results, against the fake Prometheus (the real one: *_live)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fakes.prometheus_fake import FakePrometheus

from services.contracts.tool_results import InstantSample, PrometheusResult, PrometheusSeries, RangeSeries
from services.contracts.tools import QueryPrometheusArgs
from services.tools.log_compression import size_in_tokens
from services.tools.prometheus import PrometheusClient
from services.tools.prometheus_query import (
    compact,
    fit_series,
    instant_series,
    query_prometheus,
    range_series,
    range_step,
)

NOW = datetime(2026, 11, 24, 6, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.123456, 0.1235),
        (1234567.0, 1235000.0),
        (2.0, 2.0),
        (math.nan, None),
        (math.inf, "+Inf"),
        (None, None),
    ],
)
def test_values_are_shown_to_four_significant_digits(value: float | None, shown: object) -> None:
    assert compact(value) == shown


@pytest.mark.parametrize(
    ("minutes", "asked", "step"),
    [(10, None, 11), (10, 30, 30), (60, 1, 62), (1, None, 2), (1, 5, 5)],
)
def test_a_range_has_at_most_sixty_points(minutes: int, asked: int | None, step: int) -> None:
    assert range_step(minutes, asked) == step
    assert math.ceil(minutes * 60 / step) + 1 <= 60


def test_instant_series_largest_first() -> None:
    data = {
        "resultType": "vector",
        "result": [
            {"metric": {"code": "200"}, "value": [1, "5"]},
            {"metric": {"code": "500"}, "value": [1, "NaN"]},
            {"metric": {"code": "503"}, "value": [1, "12.5"]},
        ],
    }
    assert instant_series(data) == [
        InstantSample(metric={"code": "503"}, value=12.5),
        InstantSample(metric={"code": "200"}, value=5.0),
        InstantSample(metric={"code": "500"}, value=None),
    ]


def test_range_series_sit_on_the_grid_with_gaps() -> None:
    start = NOW - timedelta(seconds=60)
    t = start.timestamp()
    data = {
        "resultType": "matrix",
        "result": [
            {"metric": {"pod": "a"}, "values": [[t, "1"], [t + 60, "2"]]},
            {"metric": {"pod": "b"}, "values": [[t + 30, "7"]]},
        ],
    }
    assert range_series(data, start, 30, 3) == [
        RangeSeries(metric={"pod": "b"}, values=[None, 7.0, None]),
        RangeSeries(metric={"pod": "a"}, values=[1.0, None, 2.0]),
    ]


def test_series_over_the_budget_are_left_out_and_counted() -> None:
    series: list[PrometheusSeries] = [
        InstantSample(metric={"worker": f"w{i:02d}", "pool": "batch"}, value=float(i)) for i in range(80)
    ]

    result = fit_series(PrometheusResult(query="worker_busy", result_type="vector"), series, max_tokens=400)

    assert size_in_tokens(result) <= 400
    assert result.series_total == 80
    kept = len(result.series)
    assert 0 < kept < 50
    assert result.omitted is not None and result.omitted.startswith(
        f"{80 - kept} of 80 series left out to stay under 400 tokens"
    )


async def test_an_instant_query(http: httpx.AsyncClient) -> None:
    with FakePrometheus({"sum(up)": 3}) as prom:
        result = await query_prometheus(
            PrometheusClient(prom.url, http), QueryPrometheusArgs(query="sum(up)"), 2000, NOW
        )
    assert result.for_model() == {  # what the model reads
        "query": "sum(up)",
        "result_type": "vector",
        "at": "2026-11-24T06:05:00Z",
        "series_total": 1,
        "series": [{"metric": {}, "value": 3.0}],
        "omitted": None,
    }
    assert prom.requests[0].arg("time") is None  # "now" is Prometheus's own


async def test_a_range_query_at_the_alert_time(http: httpx.AsyncClient) -> None:
    alert = datetime(2026, 11, 24, 6, 2, 41, tzinfo=UTC)
    args = QueryPrometheusArgs(query="sum(up)", range_minutes=30, end=alert)
    with FakePrometheus({"sum(up)": 3}) as prom:
        result = await query_prometheus(PrometheusClient(prom.url, http), args, 2000, NOW)

    assert (result.start, result.end, result.step_seconds) == (
        "2026-11-24T05:32:12Z",  # 60 points of 31 s: a little more than the 30 minutes asked
        "2026-11-24T06:02:41Z",
        31,
    )
    assert result.series == [RangeSeries(metric={}, values=[3.0] * 60)]
    assert prom.requests[0].arg("step") == "31"


async def test_a_scalar_query(http: httpx.AsyncClient) -> None:
    with FakePrometheus() as prom:
        prom.values = {}
        body = {"status": "success", "data": {"resultType": "scalar", "result": [1795500262.1, "42"]}}
        async with httpx.AsyncClient(
            transport=httpx.MockTransport(lambda _: httpx.Response(200, json=body))
        ) as mock:
            result = await query_prometheus(
                PrometheusClient("http://prom", mock), QueryPrometheusArgs(query="scalar(x)"), 2000, NOW
            )
    assert result.for_model() == {
        "query": "scalar(x)",
        "result_type": "scalar",
        "at": "2026-11-24T06:05:00Z",
        "value": 42.0,
    }
