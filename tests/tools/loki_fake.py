"""Fake Grafana Loki `GET /loki/api/v1/query_range` for log queries (docs/vendor-contracts.md §7).

Follows the documented contract: a LogQL stream selector with optional line filters; `start`
and `end` as nanosecond epochs or RFC 3339 (end exclusive, defaults now-1h and now); `limit`
(default 100) over all streams together; `direction` backward (newest first, the default) or
forward; timestamps in `values` as nanosecond strings. Loki's plain-text 400s for a parse error,
a selector that matches everything, or a limit over `max_entries_limit_per_query` (5000).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from fakes.base import FakeHTTPServer, RecordedRequest, Response, json_response

MAX_ENTRIES_LIMIT = 5000
_STRING = r'"((?:[^"\\]|\\.)*)"'
_MATCHER = re.compile(rf"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*{_STRING}\s*")
_LINE_FILTER = re.compile(rf"\s*(\|=|!=|\|~|!~)\s*{_STRING}")
Stream = tuple[Mapping[str, str], Sequence[tuple[int, str]]]  # labels, (nanoseconds, line) pairs


class BadQuery(ValueError):
    """Becomes Loki's 400 with a plain-text body."""


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _matches(op: str, wanted: str, value: str) -> bool:
    if op == "=":
        return value == wanted
    if op == "!=":
        return value != wanted
    found = re.fullmatch(wanted, value) is not None
    return found if op == "=~" else not found


def parse_query(query: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """(label matchers, line filters) of `{a="b", c=~"d"} |= "x"`."""
    text = query.strip()
    if not text.startswith("{") or "}" not in text:
        raise BadQuery("parse error at line 1, col 1: syntax error: unexpected IDENTIFIER, expecting {")
    body, rest = text[1:].split("}", 1)
    matchers = []
    for part in filter(None, (p for p in re.split(r",(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", body) if p.strip())):
        match = _MATCHER.fullmatch(part)
        if match is None:
            raise BadQuery(f"parse error at line 1, col 2: syntax error: unexpected {part.strip()!r}")
        matchers.append((match[1], match[2], _unquote(match[3])))
    if not any(not _matches(op, value, "") for _, op, value in matchers):
        raise BadQuery(
            "queries require at least one regexp or equality matcher that does not have an "
            'empty-compatible value. For instance, app=~".*" does not meet this requirement, but '
            'app=~".+" will'
        )
    filters = []
    while rest.strip():
        match = _LINE_FILTER.match(rest)
        if match is None:
            raise BadQuery(f"parse error : syntax error: unexpected {rest.strip()!r}")
        filters.append((match[1], _unquote(match[2])))
        rest = rest[match.end() :]
    return matchers, filters


def _line_passes(filters: list[tuple[str, str]], line: str) -> bool:
    checks = {
        "|=": lambda v: v in line,
        "!=": lambda v: v not in line,
        "|~": lambda v: re.search(v, line) is not None,
        "!~": lambda v: re.search(v, line) is None,
    }
    return all(checks[op](value) for op, value in filters)


def _nanoseconds(name: str, raw: str | None, default: int) -> int:
    if raw is None:
        return default
    if raw.isdigit():
        return int(raw)
    try:
        return int(datetime.fromisoformat(raw).timestamp() * 1e9)
    except ValueError:
        raise BadQuery(f'invalid parameter "{name}": cannot parse "{raw}"') from None


class FakeLoki(FakeHTTPServer):
    """LOKI_URL is fake.url. `streams` are (labels, [(nanoseconds, line), ...]) as Loki stores them."""

    def __init__(self, streams: Sequence[Stream] = (), delay_seconds: float = 0.0) -> None:
        super().__init__(delay_seconds)
        self.streams = list(streams)

    @property
    def queries(self) -> list[str]:
        return [r.arg("query") or "" for r in self.requests]

    def fail(self, status: int, body: str, headers: Mapping[str, str] | None = None, times: int = 1) -> None:
        """Answer the next `times` requests with this failure (Loki's errors are plain text)."""
        self._inject(
            (status, {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}, body.encode()), times
        )

    def handle(self, req: RecordedRequest) -> Response:
        if req.method != "GET" or req.path != "/loki/api/v1/query_range":
            return 404, {"Content-Type": "text/plain"}, b"404 page not found\n"
        if injected := self._take_injected():
            return injected
        try:
            return json_response(200, {"status": "success", "data": self._streams(req)})
        except BadQuery as error:
            return 400, {"Content-Type": "text/plain; charset=utf-8"}, str(error).encode()

    def _streams(self, req: RecordedRequest) -> dict[str, Any]:
        matchers, filters = parse_query(req.arg("query") or "")
        limit = int(req.arg("limit", "100") or 100)
        if limit > MAX_ENTRIES_LIMIT:
            raise BadQuery(
                "max entries limit per query exceeded, "
                f"limit > max_entries_limit ({limit} > {MAX_ENTRIES_LIMIT})"
            )
        now = time.time_ns()
        end = _nanoseconds("end", req.arg("end"), now)
        start = _nanoseconds("start", req.arg("start"), end - 3600 * 10**9)
        backward = req.arg("direction", "backward") == "backward"
        hits = [
            (ns, index, line)
            for index, (labels, values) in enumerate(self.streams)
            if all(_matches(op, value, labels.get(name, "")) for name, op, value in matchers)
            for ns, line in values
            if start <= ns < end and _line_passes(filters, line)
        ]
        hits.sort(key=lambda hit: hit[0], reverse=backward)
        by_stream: dict[int, list[list[str]]] = {}
        for ns, index, line in hits[:limit]:
            by_stream.setdefault(index, []).append([str(ns), line])
        result = [{"stream": dict(self.streams[i][0]), "values": values} for i, values in by_stream.items()]
        return {"resultType": "streams", "result": result, "stats": {}}
