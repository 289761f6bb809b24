"""Grafana Loki (`GET {LOKI_URL}/loki/api/v1/query_range`): log lines of a stream selector in a window.

Loki returns each line as the application wrote it, with the stream's labels; the level and
message are read from the labels, a JSON body or `level=` (logfmt), in that order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from services.tools.errors import BackendError, get, json_body, retrying, status_error
from services.tools.log_compression import LogEntry
from services.tools.log_query import LogQuery
from services.tools.prometheus import string_literal  # LogQL's string literals are PromQL's

SYSTEM = "Loki (LOKI_URL)"
# Loki's default `max_entries_limit_per_query`: a larger `limit` is refused with a 400.
MAX_LIMIT = 5000
# Alert labels that usually name a log stream too; others (alertname, severity) never do.
STREAM_LABELS = ("namespace", "cluster", "pod", "container")
_SERVICE_LABELS = ("service", "service_name", "app", "job", "container")
_LEVEL_LABELS = ("level", "detected_level", "severity", "lvl")
_JSON_LEVEL_KEYS = ("level", "severity", "lvl", "log.level", "levelname")
_JSON_MESSAGE_KEYS = ("message", "msg", "log")
# Fields where JSON loggers put a traceback; appended so the trace is kept whole.
_JSON_TRACE_KEYS = ("exc_info", "exception", "stack_trace", "stacktrace", "stack", "error.stack")
_LOGFMT_LEVEL = re.compile(r"(?:^|\s)(?:level|lvl|severity)=\"?(?P<level>\w+)")


def stream_selector(service: str | None, labels: Mapping[str, str] | None) -> str:
    """`{service="checkout", namespace="shop"}` from the service and the stream-like alert labels.

    Loki refuses a selector that matches everything, so with nothing to select on it is
    `{service=~".+"}`: every stream that has a service label.
    """
    matchers = [f"service={string_literal(service)}"] if service else []
    for name in STREAM_LABELS:
        if value := (labels or {}).get(name):
            matchers.append(f"{name}={string_literal(value)}")
    return "{" + ", ".join(matchers or ['service=~".+"']) + "}"


def _nanoseconds(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1_000_000) * 1000)


def _iso_from_nanoseconds(nanoseconds: str) -> str:
    try:
        moment = datetime.fromtimestamp(int(nanoseconds) / 1e9, UTC)
    except (ValueError, OverflowError, OSError):
        return nanoseconds
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_field(body: Mapping[str, Any], keys: Iterable[str]) -> str:
    for key in keys:
        value = body.get(key)
        if value not in (None, ""):
            return value if isinstance(value, str) else json.dumps(value)
    return ""


def entry_of(labels: Mapping[str, str], nanoseconds: str, line: str) -> LogEntry:
    """One Loki line as a log entry: time in ISO 8601, service and level from labels or body."""
    level = _json_field(labels, _LEVEL_LABELS)
    message = line
    body: Any = None
    if line.startswith("{"):
        try:
            body = json.loads(line)
        except ValueError:
            body = None
    if isinstance(body, dict):
        level = level or _json_field(body, _JSON_LEVEL_KEYS)
        message = _json_field(body, _JSON_MESSAGE_KEYS) or line
        trace = _json_field(body, _JSON_TRACE_KEYS)
        if trace and trace not in message:
            message = f"{message}\n{trace}"
    elif not level and (match := _LOGFMT_LEVEL.search(line)):
        level = match["level"]
    service = _json_field(labels, _SERVICE_LABELS)
    return LogEntry(
        timestamp=_iso_from_nanoseconds(nanoseconds), level=level, message=message, service=service
    )


def entries_of(data: Any) -> list[LogEntry]:
    """The lines of a `streams` answer, oldest first, whatever `direction` they came in."""
    if not isinstance(data, dict) or data.get("resultType") != "streams":
        kind = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise BackendError("unavailable", f"{SYSTEM} answered {kind!r} data, expected log streams")
    lines: list[tuple[int, LogEntry]] = []
    for stream in data.get("result") or []:
        if not isinstance(stream, dict):
            continue
        labels = stream.get("stream") or {}
        for value in stream.get("values") or []:
            try:
                nanoseconds, line = str(value[0]), str(value[1])
                lines.append((int(nanoseconds), entry_of(labels, nanoseconds, line)))
            except (TypeError, ValueError, IndexError):
                continue  # one odd line must not cost the whole investigation
    lines.sort(key=lambda item: item[0])
    return [entry for _, entry in lines]


class LokiClient:
    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http

    async def query_range(self, query: str, start: datetime, end: datetime, limit: int) -> list[LogEntry]:
        """The newest `limit` lines of `query` in [start, end], oldest first."""
        params = {
            "query": query,
            "start": _nanoseconds(start),
            "end": _nanoseconds(end),
            "limit": min(limit, MAX_LIMIT),
            "direction": "backward",  # with a limit, the lines nearest the alert matter most
        }
        url = f"{self.base_url}/loki/api/v1/query_range"

        async def attempt() -> httpx.Response:
            response = await get(self.http, SYSTEM, url, params=params)
            if not response.is_success:
                raise status_error(SYSTEM, response)
            return response

        body = json_body(SYSTEM, await retrying(attempt, f"{SYSTEM} query_range"))
        if not isinstance(body, dict) or body.get("status") != "success":
            raise BackendError("unavailable", f"{SYSTEM} answered without status success")
        return entries_of(body.get("data"))

    async def lines(self, query: LogQuery) -> tuple[list[LogEntry], dict[str, Any]]:
        """fetch_logs' source interface: the lines of the query's window, and the selector used."""
        selector = stream_selector(query.service, query.labels)
        entries = await self.query_range(selector, query.start, query.end, query.limit)
        broad = stream_selector(query.service, None)
        if not entries and selector != broad:
            # The alert's labels need not exist on the log streams: widen to the service alone.
            selector = broad
            entries = await self.query_range(selector, query.start, query.end, query.limit)
        return entries, {"selector": selector}
