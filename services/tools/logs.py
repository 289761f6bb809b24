"""The fetch_logs tool: lines from the load balancer (`GET {LB_URL}/logs/tail`) and/or Loki,
filtered by service, level and time, compressed to the token budget."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError

from services.contracts.tool_results import LogsQuery, LogsResult, LogTemplate, TimeRange
from services.contracts.tools import FetchLogsArgs
from services.tools.errors import BackendError, get, json_body, retrying, status_error
from services.tools.log_compression import (
    KNOWN_LEVELS,
    LogEntry,
    compress_logs,
    level_rank,
    merge_continuations,
    size_in_tokens,
    time_span,
)
from services.tools.log_query import LogQuery, log_query
from services.tools.times import iso, parse_timestamp

SYSTEM = "the load balancer (LB_URL)"
# When a filter matches nothing, name this many of the services that were there, so the
# model can correct a misspelt service name.
MAX_SERVICES_SEEN = 20
_REPLICA_SUFFIX = re.compile(r"-\d+$")

SourceLines = tuple[list[LogEntry], dict[str, Any]]


class LogSource(Protocol):
    async def lines(self, query: LogQuery) -> SourceLines:
        """The lines of the query's window, oldest first, and what was asked (for the result)."""
        ...


class LogsClient:
    """The seed's load balancer log tail."""

    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http

    async def tail(self, seconds: int, limit: int) -> list[LogEntry]:
        """The last `limit` lines of the last `seconds`, oldest first; malformed lines are skipped."""
        url, params = f"{self.base_url}/logs/tail", {"seconds": seconds, "limit": limit}

        async def attempt() -> httpx.Response:
            response = await get(self.http, SYSTEM, url, params=params)
            if not response.is_success:
                raise status_error(SYSTEM, response)
            return response

        response = await retrying(attempt, f"{SYSTEM} /logs/tail")
        try:
            # The usual answer, read in one pass from the bytes: 3 ms for 610 lines against 5.
            return LOG_LINES.validate_json(response.content)
        except ValueError:
            pass  # an odd line, or no list at all: read line by line below, which says so
        body = json_body(SYSTEM, response)
        if not isinstance(body, list):
            kind = type(body).__name__
            raise BackendError("unavailable", f"{SYSTEM} answered a {kind}, expected a list of lines")
        return list(_parse_entries(body))

    async def lines(self, query: LogQuery) -> SourceLines:
        """The tail reaches back to the window's start; lines after its end are cut here."""
        seconds = max(1, math.ceil((query.now - query.start).total_seconds()))
        entries = await self.tail(seconds, query.limit)
        if query.anchored:
            entries = [e for e in entries if within(e, query.start, query.end)]
        return entries, {"seconds": seconds}


LOG_LINES = TypeAdapter(list[LogEntry])
# Compression is ~40 ms of regex work per 1,000 lines: past this many lines it runs in a worker
# thread, so that other requests keep flowing; below, the thread hop would cost more than it saves.
INLINE_LINES = 50
T = TypeVar("T")


async def off_the_loop(lines: int, work: Callable[..., T], *args: Any) -> T:
    return work(*args) if lines <= INLINE_LINES else await asyncio.to_thread(work, *args)


def _parse_entries(items: list[Any]) -> Iterable[LogEntry]:
    for item in items:
        try:
            yield LogEntry.model_validate(item)
        except ValidationError:
            continue  # one odd line must not cost the whole investigation


def within(entry: LogEntry, start: datetime, end: datetime) -> bool:
    """In [start, end]; a line whose time cannot be read is kept rather than silently lost."""
    moment = parse_timestamp(entry.timestamp)
    return moment is None or start <= moment <= end


def service_matches(entry_service: str, wanted: str) -> bool:
    """`inventory-1` (a replica) is `inventory`; the full replica name matches itself too."""
    return entry_service == wanted or _REPLICA_SUFFIX.sub("", entry_service) == wanted


# Neighbours: other services' warnings and errors about this one, or about what this one calls.
MAX_NEIGHBOUR_TEMPLATES = 6
NEIGHBOUR_TOKENS = 400


def base_service(name: str) -> str:
    """`checkout-2` (a replica) -> `checkout`."""
    return _REPLICA_SUFFIX.sub("", name)


def names(text: str, name: str) -> bool:
    """`name` as a word of `text` (not a part of a longer name: `cart` is not in `cart-redis`)."""
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE) is not None


def neighbour_entries(entries: Sequence[LogEntry], service: str) -> list[LogEntry]:
    """Warnings and errors of other services that name `service` (its callers' view of it), and
    those of the services `service`'s own warnings and errors name (its dependencies' view)."""
    warn = level_rank("WARN") or 0
    troubles = [e for e in merge_continuations(entries) if (level_rank(e.level) or 0) >= warn]
    own = "\n".join(e.message for e in troubles if service_matches(e.service, service))
    others = {base_service(e.service) for e in troubles} - {service}
    callees = {name for name in others if names(own, name)}
    return [
        e
        for e in troubles
        if not service_matches(e.service, service)
        and (base_service(e.service) in callees or names(e.message, service))
    ]


def neighbour_templates(
    entries: Sequence[LogEntry], alert_start: datetime | None, span: tuple[datetime, datetime] | None = None
) -> list[LogTemplate]:
    """The neighbours' lines as templates of each service, the worst and newest first."""
    templates = []
    for name in sorted({base_service(e.service) for e in entries}):
        lines = [e for e in entries if base_service(e.service) == name]
        found = compress_logs(lines, NEIGHBOUR_TOKENS, alert_start, span=span).templates
        templates += [t.model_copy(update={"service": name}) for t in found]
    templates.sort(key=lambda t: (-(level_rank(t.level) or 0), t.change not in ("new", "jumped"), -t.count))
    return templates[:MAX_NEIGHBOUR_TEMPLATES]


def check_level(level: str) -> int:
    rank = level_rank(level)
    if rank is None:
        known = ", ".join(KNOWN_LEVELS)
        raise BackendError("bad_request", f"unknown log level {level!r}; use one of {known}")
    return rank


def filter_entries(entries: list[LogEntry], service: str | None, level: str | None) -> list[LogEntry]:
    """Lines of `service` at `level` or above. Continuation lines are merged before the level
    filter, so a trace logged line by line is kept whole with its (error) first line."""
    if service:
        entries = [e for e in entries if service_matches(e.service, service)]
    if not level:
        return entries
    minimum = check_level(level)
    return [e for e in merge_continuations(entries) if (level_rank(e.level) or 0) >= minimum]


def _line_key(entry: LogEntry) -> tuple[datetime | str | None, str]:
    # Not the service: the load balancer names replicas (checkout-1), Loki the stream (checkout).
    return parse_timestamp(entry.timestamp) or entry.timestamp, entry.message


def merge_sources(batches: Sequence[list[LogEntry]]) -> list[LogEntry]:
    """One time-ordered list from several sources; a line an earlier source already had is
    dropped (repeats within one source are real repeats and stay)."""
    if len(batches) == 1:
        return batches[0]
    merged = list(batches[0])
    for batch in batches[1:]:
        seen = {_line_key(entry) for entry in merged}
        merged += [entry for entry in batch if _line_key(entry) not in seen]
    seconds = [moment.timestamp() if (moment := parse_timestamp(e.timestamp)) else 0.0 for e in merged]
    order = sorted(range(len(merged)), key=seconds.__getitem__)
    return [merged[i] for i in order]  # sorted() is stable: a source's own order survives ties


async def gather_lines(
    sources: Mapping[str, LogSource], query: LogQuery
) -> tuple[list[LogEntry], dict[str, Any]]:
    """All sources at once. One failing is reported beside the others' lines; all failing is the error."""
    outcomes = await asyncio.gather(*(s.lines(query) for s in sources.values()), return_exceptions=True)
    batches: list[list[LogEntry]] = []
    asked: dict[str, Any] = {}
    failures: dict[str, BackendError] = {}
    for name, outcome in zip(sources, outcomes, strict=True):
        if isinstance(outcome, BackendError):
            failures[name] = outcome
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            batches.append(outcome[0])
            asked[name] = {**outcome[1], "lines": len(outcome[0])}
    if not batches:
        first = next(iter(failures.values()))
        if len(failures) == 1:
            raise first
        message = "; ".join(f"{name}: {error.message}" for name, error in failures.items())
        raise BackendError(first.kind, message, first.retry_after)
    if failures:
        asked["failed"] = {name: error.message for name, error in failures.items()}
    return merge_sources(batches), asked


async def fetch_logs(
    sources: Mapping[str, LogSource], args: FetchLogsArgs, max_tokens: int, now: datetime
) -> LogsResult:
    """The fetch_logs tool: gather, filter, compress; `query` says what was asked and scanned."""
    if args.level:
        check_level(args.level)  # before the request: a typo should not cost a round trip
    window = log_query(args, now)
    entries, asked = await gather_lines(sources, window)
    fallback_note = None
    if window.anchored and not entries:
        # Diagnosed long after the alert started (a replay, a late re-send): the sources keep no
        # lines that old, but the recent ones still tell the current story.
        recent = log_query(args.model_copy(update={"starts_at": None}), now)
        entries, asked = await gather_lines(sources, recent)
        fallback_note = (
            f"no lines around the alert's start ({iso(window.start)} to {iso(window.end)}); "
            f"these are the last {args.seconds} s instead"
        )
    matched = filter_entries(entries, args.service, args.level)
    query = LogsQuery(
        service=args.service,
        level=args.level,
        seconds=args.seconds,
        lines_scanned=len(entries),
        sources=asked,
        window=TimeRange(start=iso(window.start), end=iso(window.end)) if window.anchored else None,
        note=fallback_note,
        services_seen=sorted({e.service for e in entries})[:MAX_SERVICES_SEEN]
        if not matched and entries
        else None,
    )
    span = time_span(entries)  # what was read, every service's lines: the baseline of `change`
    neighbours: list[LogTemplate] = []
    if args.service:
        near = neighbour_entries(entries, args.service)
        neighbours = await off_the_loop(len(near), neighbour_templates, near, window.alert_start, span)
    reserved = size_in_tokens({"query": query, "neighbours": neighbours})
    result = await off_the_loop(
        len(matched), compress_logs, matched, max_tokens, window.alert_start, reserved, span
    )
    result.query = query
    result.neighbours = neighbours
    return result
