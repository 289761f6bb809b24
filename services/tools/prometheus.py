"""Prometheus HTTP API (`GET {PROM_URL}/api/v1/query` and `/query_range`): read-only queries."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import httpx

from services.tools.errors import (
    BackendError,
    get,
    retry_after_seconds,
    retrying,
    short_detail,
    status_error,
)

SYSTEM = "Prometheus (PROM_URL)"


def string_literal(value: str) -> str:
    """A PromQL string literal: `we"ird` -> `"we\\"ird"`."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sample_value(data: dict[str, Any]) -> float | None:
    """The one number of an instant query's `data`; None for no series or NaN.

    Samples are `[timestamp, "value"]` with the value as a string.
    """
    result = data.get("result")
    sample: Any
    if data.get("resultType") == "scalar":
        sample = result
    elif not result:
        return None
    elif len(result) > 1:
        message = f"the query returned {len(result)} series, expected one; aggregate it, e.g. sum(...)"
        raise BackendError("bad_request", message)
    else:
        sample = result[0].get("value")
    value = parse_sample(sample)
    return value if value is not None and math.isfinite(value) else None


def parse_sample(sample: Any) -> float | None:
    """`[timestamp, "1.5"]` -> 1.5 (NaN and infinities included: Prometheus spells them out)."""
    try:
        return float(sample[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise BackendError("unavailable", f"{SYSTEM} answered an unreadable sample: {sample!r}") from exc


class PrometheusClient:
    """Instant and range queries; `timeout_seconds` is also sent to Prometheus so that it stops
    evaluating a query nobody waits for any more."""

    def __init__(self, base_url: str, http: httpx.AsyncClient, timeout_seconds: float | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.timeout_seconds = timeout_seconds

    async def query(self, expr: str, at: datetime | None = None) -> dict[str, Any]:
        """`data` of an instant query, evaluated now or `at`."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        return await self._data("query", params)

    async def query_range(self, expr: str, start: datetime, end: datetime, step: float) -> dict[str, Any]:
        """`data` of a range query: a matrix with a point every `step` seconds from `start`."""
        params = {"query": expr, "start": f"{start.timestamp():.3f}", "end": f"{end.timestamp():.3f}"}
        return await self._data("query_range", {**params, "step": f"{step:g}"})

    async def instant(self, expr: str) -> float | None:
        """The single number an aggregated instant query gives now; None for no data."""
        return sample_value(await self.query(expr))

    async def _data(self, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
        if self.timeout_seconds:
            params["timeout"] = f"{self.timeout_seconds:g}s"
        return await retrying(lambda: self._ask(endpoint, params), f"{SYSTEM} /api/v1/{endpoint}")

    async def _ask(self, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
        response = await get(self.http, SYSTEM, f"{self.base_url}/api/v1/{endpoint}", params=params)
        try:
            body = response.json()
        except ValueError:
            body = None  # a proxy's HTML error page: judged by its status below
        if isinstance(body, dict) and body.get("status") == "error":
            raise _query_error(response, body)
        if not response.is_success:
            raise status_error(SYSTEM, response)
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise BackendError("unavailable", f"{SYSTEM} answered unexpected data: {short_detail(response)}")
        data: dict[str, Any] = body["data"]
        if body.get("warnings"):
            data = {**data, "warnings": body["warnings"]}
        return data


def _query_error(response: httpx.Response, body: dict[str, Any]) -> BackendError:
    """Prometheus's own error: bad_data/execution are the query's fault; timeout/canceled are not."""
    kind = body.get("errorType", "")
    message = f"{SYSTEM} rejected the query ({kind}): {body.get('error', '')}"
    retry_after = retry_after_seconds(response.headers)
    status = response.status_code
    if kind == "timeout":
        return BackendError("timeout", message, retry_after, system=SYSTEM, status=status)
    if status >= 500 or kind in ("canceled", "internal", "unavailable"):
        return BackendError("unavailable", message, retry_after, system=SYSTEM, status=status)
    return BackendError("bad_request", message, system=SYSTEM, status=status)
