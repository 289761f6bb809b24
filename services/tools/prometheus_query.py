"""query_prometheus: a PromQL query for the model's follow-up questions, with a capped answer.

A range is asked at no more than MAX_POINTS points per series, values go out on the time grid
(one number per step, null for a gap) rather than as [timestamp, value] pairs, series are ranked
by their largest value, and as many as fit the token budget are kept.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from services.contracts.tool_results import (
    InstantSample,
    InstantSeries,
    PrometheusResult,
    PrometheusSeries,
    RangeSeries,
    SampleValue,
)
from services.contracts.tools import QueryPrometheusArgs
from services.tools.log_compression import size_in_tokens
from services.tools.prometheus import PrometheusClient, parse_sample
from services.tools.times import as_utc, iso

MAX_POINTS = 60
MAX_SERIES = 50  # read at most; the token budget usually keeps fewer
MAX_WARNINGS = 3
MAX_WARNING_CHARS = 300
SIGNIFICANT_DIGITS = 4


def compact(value: float | None) -> float | str | None:
    """Four significant digits (what a person reads off a graph); NaN is null, infinities spelt out."""
    if value is None or math.isnan(value):
        return None
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def _peak(values: list[float | None]) -> float:
    numbers = [v for v in values if v is not None and not math.isnan(v)]
    return max(numbers, default=-math.inf)


def range_step(minutes: int, asked: int | None) -> int:
    """The asked step, made coarse enough for at most MAX_POINTS points."""
    return max(asked or 0, math.ceil(minutes * 60 / (MAX_POINTS - 1)), 1)


def instant_series(data: dict[str, Any]) -> list[PrometheusSeries]:
    """Vector samples, largest first; a matrix (a range selector queried at an instant) keeps
    its newest MAX_POINTS samples per series."""
    series: list[tuple[float, PrometheusSeries]] = []
    for item in data.get("result") or []:
        if "values" in item:
            samples = item["values"][-MAX_POINTS:]
            values = [parse_sample(s) for s in samples]
            shaped = InstantSeries(
                metric=item.get("metric", {}),
                samples=[(s[0], compact(v)) for s, v in zip(samples, values, strict=True)],
            )
            series.append((_peak(values), shaped))
        else:
            value = parse_sample(item.get("value"))
            series.append(
                (_peak([value]), InstantSample(metric=item.get("metric", {}), value=compact(value)))
            )
    series.sort(key=lambda pair: -pair[0])
    return [shaped for _, shaped in series]


def range_series(data: dict[str, Any], start: datetime, step: int, points: int) -> list[PrometheusSeries]:
    """Each series as one value per grid point (None in gaps), the highest peaks first."""
    series: list[tuple[float, PrometheusSeries]] = []
    for item in data.get("result") or []:
        values: list[float | None] = [None] * points
        for sample in item.get("values", []):
            index = round((float(sample[0]) - start.timestamp()) / step)
            if 0 <= index < points:
                values[index] = parse_sample(sample)
        shaped = RangeSeries(metric=item.get("metric", {}), values=[compact(v) for v in values])
        series.append((_peak(values), shaped))
    series.sort(key=lambda pair: -pair[0])
    return [shaped for _, shaped in series]


def fit_series(result: PrometheusResult, series: list[PrometheusSeries], max_tokens: int) -> PrometheusResult:
    """Keep the leading series while the whole result fits; say how many were left out."""
    total = len(series)
    result.series_total = total
    kept = series[:MAX_SERIES]
    while True:
        result.series = kept
        left_out = total - len(kept)
        result.omitted = (
            f"{left_out} of {total} series left out to stay under {max_tokens} tokens; "
            "aggregate with sum by (...) or topk(...)"
            if left_out
            else None
        )
        if not kept or size_in_tokens(result) <= max_tokens:
            return result
        kept = kept[:-1]


def single_value(data: dict[str, Any]) -> SampleValue:
    """The answer of a scalar or string query: `[timestamp, "value"]`."""
    sample = data.get("result") or [None, None]
    return compact(parse_sample(sample)) if data.get("resultType") == "scalar" else sample[1]


async def query_prometheus(
    client: PrometheusClient, args: QueryPrometheusArgs, max_tokens: int, now: datetime
) -> PrometheusResult:
    """An instant query (`range_minutes` 0) or a range query ending at `end` (default now)."""
    end = as_utc(args.end) if args.end else now
    series: list[PrometheusSeries] = []
    if args.range_minutes:
        step = range_step(args.range_minutes, args.step_seconds)
        points = math.ceil(args.range_minutes * 60 / step) + 1  # covers at least the minutes asked
        start = end - timedelta(seconds=step * (points - 1))
        data = await client.query_range(args.query, start, end, step)
        result = PrometheusResult(
            query=args.query, result_type="matrix", start=iso(start), end=iso(end), step_seconds=step
        )
        series = range_series(data, start, step, points)
    else:
        data = await client.query(args.query, end if args.end else None)
        result = PrometheusResult(query=args.query, result_type=data.get("resultType"), at=iso(end))
        if result.is_single_value:
            result.value = single_value(data)
        else:
            series = instant_series(data)
    if data.get("warnings"):
        result.warnings = [str(w)[:MAX_WARNING_CHARS] for w in data["warnings"][:MAX_WARNINGS]]
    return result if result.is_single_value else fit_series(result, series, max_tokens)
