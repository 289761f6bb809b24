"""compute_error_rate: errors / requests per second of a service, and whether to trust the number.

The same queries over the last ten rate windows (a range query, a point every half window, the
last one at now) give the current rates, the trend and the series' age: the first point that has
data is (at most half a window after) the moment the series appeared. Only when the range query
fails (an old server, a proxy without query_range) are the current rates asked as instant queries.
A series younger than the rate window is *young*: `rate()` then sees only part of the window
and underestimates. That is common in an incident, because client libraries create a labelled
error counter at its first increment, so the errors series is born with the incident.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.contracts.tool_results import ErrorRateResult, ErrorRateTrend
from services.tools.errors import BackendError
from services.tools.prometheus import PrometheusClient, parse_sample, string_literal
from services.tools.times import iso

DEFAULT_WINDOW_SECONDS = 60.0
TREND_STEPS = 20  # points of the trend beyond the first: ten windows at half a window each
NO_TRAFFIC = "no requests in the rate window (or no such series): the error rate is undefined"
_RANGE = re.compile(r"\[(?P<range>(?:\d+(?:ms|s|m|h|d|w|y))+)(?::[^\]]*)?\]")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


@dataclass(frozen=True)
class RateQueries:
    """The two query templates (settings); see `render` for their placeholders."""

    errors: str
    requests: str


def selector(service: str | None) -> str:
    return f"{{service={string_literal(service)}}}" if service else ""


def render(template: str, service: str | None) -> str:
    """`{selector}` -> `{service="X"}` and `{matchers}` -> `service="X"` (both empty without a
    service). Plain replacement, not str.format: the rest of a PromQL template has braces too."""
    matchers = f"service={string_literal(service)}" if service else ""
    return template.replace("{selector}", selector(service)).replace("{matchers}", matchers)


def rate_window_seconds(query: str) -> float:
    """The longest range (`[1m]`, `[5m:30s]`) in a query: how far back its rate looks."""
    windows = [
        sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(m["range"]))
        for m in _RANGE.finditer(query)
    ]
    return max(windows, default=DEFAULT_WINDOW_SECONDS)


def grid_values(data: dict[str, Any], start: datetime, step: float, points: int) -> list[float | None]:
    """The single series of a range answer on its grid (None where there was no point)."""
    values: list[float | None] = [None] * points
    series = data.get("result") or []
    if len(series) > 1:
        raise BackendError(
            "bad_request", f"the query returned {len(series)} series; aggregate it with sum(...)"
        )
    for sample in series[0].get("values", []) if series else []:
        index = round((float(sample[0]) - start.timestamp()) / step)
        if 0 <= index < points:
            values[index] = parse_sample(sample)
    return values


def finite(value: float | None) -> float | None:
    """NaN (0/0 in PromQL) and infinities are no rate: None, as an instant query's sample_value says."""
    return value if value is not None and math.isfinite(value) else None


def age_seconds(values: list[float | None], step: float) -> float | None:
    """How long before the last point the series first had data; None if it never had."""
    first = next((i for i, v in enumerate(values) if v is not None), None)
    return None if first is None else (len(values) - 1 - first) * step


def ratio(errors: float | None, requests: float | None) -> float | None:
    """A counter that never moved may have no series yet: no errors series with traffic is 0.
    No traffic leaves the rate undefined (None), never a division by zero."""
    if requests is None or requests <= 0:
        return None
    return (errors or 0.0) / requests


def _percent(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 2)


@dataclass(frozen=True)
class Trend:
    start: datetime
    step: float
    errors: list[float | None]
    requests: list[float | None]

    def young_note(self, window: float) -> tuple[bool, float | None, str | None]:
        """(young, the youngest series' age at most, why) for a rate over `window` seconds.

        A series first having data `age` before the last point had none a step earlier: it is
        at most `age + step` old.
        """
        ages = {
            name: age_seconds(values, self.step)
            for name, values in (("errors", self.errors), ("requests", self.requests))
        }
        young = {name: age + self.step for name, age in ages.items() if age is not None and age < window}
        if not young:
            return False, None, None
        name, age = min(young.items(), key=lambda item: item[1])
        note = (
            f"young series: {name} has existed for at most {age:g}s, not the whole {window:g}s rate "
            f"window, so the rates may be underestimated; ask again in {window:g}s"
        )
        return True, age, note

    def result(self) -> ErrorRateTrend:
        return ErrorRateTrend(
            start=iso(self.start),
            step_seconds=self.step,
            error_rate_percent=[
                _percent(ratio(e, r)) for e, r in zip(self.errors, self.requests, strict=True)
            ],
        )


async def _trend(client: PrometheusClient, queries: list[str], window: float, now: datetime) -> Trend:
    step = window / 2
    start = now - timedelta(seconds=step * TREND_STEPS)
    errors, requests = await asyncio.gather(*(client.query_range(q, start, now, step) for q in queries))
    points = TREND_STEPS + 1
    return Trend(
        start, step, grid_values(errors, start, step, points), grid_values(requests, start, step, points)
    )


async def error_rate(
    client: PrometheusClient, templates: RateQueries, service: str | None, now: datetime
) -> ErrorRateResult:
    """Errors and requests per second now, their ratio, the trend, and whether the series are young."""
    queries = [render(templates.errors, service), render(templates.requests, service)]
    window = max(rate_window_seconds(q) for q in queries)
    trend = await _optional(_trend(client, queries, window, now))
    if isinstance(trend, Trend):
        # The trend's last point is both queries evaluated at `now`: what the instant queries
        # would answer, so two requests per call instead of four.
        errors, requests = finite(trend.errors[-1]), finite(trend.requests[-1])
    else:
        errors, requests = await asyncio.gather(*(client.instant(q) for q in queries))
    rate = ratio(errors, requests)
    notes = [] if rate is not None else [NO_TRAFFIC]
    if isinstance(trend, Trend):
        young, age, why = trend.young_note(window)
    else:
        young, age, why = None, None, f"no trend, so the series' age is unknown: {trend.message}"
    notes += [why] if why else []
    return ErrorRateResult(
        service=service,
        errors_per_second=errors,
        requests_per_second=requests,
        error_rate=rate,
        error_rate_percent=_percent(rate),
        window_seconds=window,
        young=young,
        series_age_seconds=age,
        trend=trend.result() if isinstance(trend, Trend) else None,
        queries=queries,
        note="; ".join(notes) or None,
    )


async def _optional(trend: Awaitable[Trend]) -> Trend | BackendError:
    """The trend is extra: without it (an old server, a proxy without query_range) the rate stands."""
    try:
        return await trend
    except BackendError as exc:
        return exc
