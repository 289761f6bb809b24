"""Fake Prometheus HTTP API (docs/vendor-contracts.md §2): instant and range queries answered from a table."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from .base import FakeHTTPServer, RecordedRequest, Response, json_response

MAX_POINTS = 11_000
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}

Values = Mapping[str, float | None] | Callable[[str], float | None]


class BadData(ValueError):
    """Becomes Prometheus's 400 bad_data error."""


def format_sample(value: float) -> str:
    """Prometheus renders samples like Go's strconv.FormatFloat(v, 'f', -1, 64): 1 -> "1", 0.25 -> "0.25"."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return format(Decimal(repr(float(value))).normalize(), "f")


def _position(query: str, index: int) -> str:
    """PromQL error positions are line:column, both 1-based."""
    line = query.count("\n", 0, index) + 1
    return f"{line}:{index - query.rfind(chr(10), 0, index)}"


def paren_error(query: str) -> str | None:
    """The parser error for unbalanced parentheses outside string literals, worded like Prometheus 2.42."""
    depth, quote, escaped = 0, "", False
    for i, char in enumerate(query):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\" and quote != "`":  # backquoted PromQL strings have no escapes
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return f"{_position(query, i)}: parse error: unexpected right parenthesis ')'"
            depth -= 1
    if depth:
        # Prometheus points at the last character: "sum(rate(x[1m]" (30 chars) gives 1:30.
        return f"{_position(query, len(query) - 1)}: parse error: unclosed left parenthesis"
    return None


def _timestamp(name: str, raw: str | None) -> float:
    try:
        return float(raw or "")
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw or "").timestamp()
    except ValueError:
        raise BadData(
            f'invalid parameter "{name}": cannot parse "{raw or ""}" to a valid timestamp'
        ) from None


def _step(raw: str | None) -> float:
    text = raw or ""
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise BadData(f'invalid parameter "step": cannot parse "{text}" to a valid duration')
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


class FakePrometheus(FakeHTTPServer):
    """PROM_URL is fake.url. `values` maps the exact PromQL text (or a callable) to a sample, or None."""

    def __init__(self, values: Values | None = None, delay_seconds: float = 0.0) -> None:
        super().__init__(delay_seconds)
        self.values: Values = values if values is not None else {}

    def fail_next(
        self, status: int, error_type: str, error: str, headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        """Answer the next `times` queries with Prometheus's error body, e.g. 503 `timeout`
        (docs/vendor-contracts.md §2), with `headers` such as Retry-After."""
        body = {"status": "error", "errorType": error_type, "error": error}
        self._inject(json_response(status, body, headers), times)

    @property
    def queries(self) -> list[str]:
        """The PromQL text of every query received, in order."""
        return [self._params(r).get("query", "") for r in self.requests if r.path.startswith("/api/v1/query")]

    def value_for(self, query: str) -> float | None:
        return self.values(query) if callable(self.values) else self.values.get(query)

    @staticmethod
    def _params(req: RecordedRequest) -> dict[str, str]:
        params = {k: v[0] for k, v in req.query.items()}
        if req.method == "POST" and req.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            params |= req.form()
        return params

    def handle(self, req: RecordedRequest) -> Response:
        if req.method not in ("GET", "POST") or req.path not in ("/api/v1/query", "/api/v1/query_range"):
            return 404, {"Content-Type": "text/plain; charset=utf-8"}, b"404 page not found\n"
        if injected := self._take_injected():
            return injected
        params = self._params(req)
        try:
            query = params.get("query", "")
            if not query.strip():
                raise BadData('invalid parameter "query": 1:1: parse error: no expression found in input')
            if problem := paren_error(query):
                raise BadData(f'invalid parameter "query": {problem}')
            data = self._instant(query, params) if req.path == "/api/v1/query" else self._range(query, params)
        except BadData as error:
            return json_response(400, {"status": "error", "errorType": "bad_data", "error": str(error)})
        return json_response(200, {"status": "success", "data": data})

    def _instant(self, query: str, params: dict[str, str]) -> dict[str, Any]:
        ts = _timestamp("time", params["time"]) if "time" in params else time.time()
        value = self.value_for(query)
        result = [] if value is None else [{"metric": {}, "value": [round(ts, 3), format_sample(value)]}]
        return {"resultType": "vector", "result": result}

    def _range(self, query: str, params: dict[str, str]) -> dict[str, Any]:
        start = _timestamp("start", params.get("start"))
        end = _timestamp("end", params.get("end"))
        step = _step(params.get("step"))
        if end < start:
            raise BadData('invalid parameter "end": end timestamp must not be before start time')
        if step <= 0:
            raise BadData(
                'invalid parameter "step": zero or negative query resolution step widths are not accepted. '
                "Try a positive integer"
            )
        if (end - start) / step > MAX_POINTS:
            raise BadData(
                "exceeded maximum resolution of 11,000 points per timeseries. "
                "Try decreasing the query resolution (?step=XX)"
            )
        value = self.value_for(query)
        if value is None:
            return {"resultType": "matrix", "result": []}
        points = int((end - start) // step) + 1
        values = [[round(start + i * step, 3), format_sample(value)] for i in range(points)]
        return {"resultType": "matrix", "result": [{"metric": {}, "values": values}]}
