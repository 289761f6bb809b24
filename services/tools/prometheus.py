"""Prometheus HTTP API (`GET {PROM_URL}/api/v1/query`): instant queries and the error rate."""

from __future__ import annotations

import asyncio
import math
from typing import Any, Final

import httpx

from services.tools.errors import BackendError, get, short_detail, status_error

SYSTEM = "Prometheus (PROM_URL)"
# The seed's queries; `{selector}` is `{service="X"}` or empty for all services.
ERRORS_QUERY: Final = "sum(rate(http_errors_total{selector}[1m]))"
REQUESTS_QUERY: Final = "sum(rate(http_requests_total{selector}[1m]))"


def selector(service: str | None) -> str:
    if not service:
        return ""
    escaped = service.replace("\\", "\\\\").replace('"', '\\"')  # PromQL string literal escaping
    return f'{{service="{escaped}"}}'


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
    try:
        value = float(sample[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise BackendError("unavailable", f"{SYSTEM} answered an unreadable sample: {sample!r}") from exc
    return value if math.isfinite(value) else None


class PrometheusClient:
    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http

    async def instant(self, query: str) -> float | None:
        response = await get(self.http, SYSTEM, f"{self.base_url}/api/v1/query", params={"query": query})
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
        return sample_value(body["data"])

    async def error_rate(self, service: str | None) -> dict[str, Any]:
        """Errors and requests per second over the last minute, and their ratio."""
        queries = [template.format(selector=selector(service)) for template in (ERRORS_QUERY, REQUESTS_QUERY)]
        errors, requests = await asyncio.gather(*(self.instant(q) for q in queries))
        return error_rate_result(service, errors, requests, queries)


def _query_error(response: httpx.Response, body: dict[str, Any]) -> BackendError:
    """Prometheus's own error: bad_data/execution are the query's fault; timeout/canceled are not."""
    kind = body.get("errorType", "")
    message = f"{SYSTEM} rejected the query ({kind}): {body.get('error', '')}"
    if kind == "timeout":
        return BackendError("timeout", message)
    if response.status_code >= 500 or kind in ("canceled", "internal", "unavailable"):
        return BackendError("unavailable", message)
    return BackendError("bad_request", message)


def error_rate_result(
    service: str | None, errors: float | None, requests: float | None, queries: list[str]
) -> dict[str, Any]:
    """A counter that never moved may have no series yet: no errors series with traffic is 0%.
    No traffic leaves the rate undefined (None), never a division by zero."""
    rate: float | None = None
    note = None
    if requests is None or requests <= 0:
        note = "no requests in the last minute (or no such series): the error rate is undefined"
    else:
        rate = (errors or 0.0) / requests
    return {
        "service": service,
        "errors_per_second": errors,
        "requests_per_second": requests,
        "error_rate": rate,
        "error_rate_percent": None if rate is None else round(rate * 100, 2),
        "queries": queries,
        "note": note,
    }
