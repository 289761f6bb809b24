"""The load balancer's recent logs (`GET {LB_URL}/logs/tail`), filtered and compressed for fetch_logs."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable
from typing import Any

import httpx
from pydantic import ValidationError

from services.contracts.tools import FetchLogsArgs
from services.tools.errors import BackendError, get, json_body, status_error
from services.tools.log_compression import (
    KNOWN_LEVELS,
    LogEntry,
    compress_logs,
    level_rank,
    merge_continuations,
)

SYSTEM = "the load balancer (LB_URL)"
# When a filter matches nothing, name this many of the services that were there, so the
# model can correct a misspelt service name.
MAX_SERVICES_SEEN = 20
_REPLICA_SUFFIX = re.compile(r"-\d+$")


class LogsClient:
    """The seed's load balancer log tail."""

    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http

    async def tail(self, seconds: int, limit: int) -> list[LogEntry]:
        """The last `limit` lines of the last `seconds`, oldest first; malformed lines are skipped."""
        response = await get(
            self.http, SYSTEM, f"{self.base_url}/logs/tail", params={"seconds": seconds, "limit": limit}
        )
        if not response.is_success:
            raise status_error(SYSTEM, response)
        body = json_body(SYSTEM, response)
        if not isinstance(body, list):
            kind = type(body).__name__
            raise BackendError("unavailable", f"{SYSTEM} answered a {kind}, expected a list of lines")
        return list(_parse_entries(body))


def _parse_entries(items: list[Any]) -> Iterable[LogEntry]:
    for item in items:
        try:
            yield LogEntry.model_validate(item)
        except ValidationError:
            continue  # one odd line must not cost the whole investigation


def service_matches(entry_service: str, wanted: str) -> bool:
    """`inventory-1` (a replica) is `inventory`; the full replica name matches itself too."""
    return entry_service == wanted or _REPLICA_SUFFIX.sub("", entry_service) == wanted


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


async def fetch_logs(client: LogsClient, args: FetchLogsArgs, max_chars: int) -> dict[str, Any]:
    """The fetch_logs tool: tail, filter, compress; `query` says what was asked and scanned."""
    if args.level:
        check_level(args.level)  # before the request: a typo should not cost a round trip
    entries = await client.tail(args.seconds, args.limit)
    matched = filter_entries(entries, args.service, args.level)
    query: dict[str, Any] = {
        "service": args.service,
        "level": args.level,
        "seconds": args.seconds,
        "lines_scanned": len(entries),
    }
    if not matched and entries:
        query["services_seen"] = sorted({e.service for e in entries})[:MAX_SERVICES_SEEN]
    budget = max_chars - len(json.dumps(query)) - len(', "query": ')
    # ~40 ms of regex work per 1000 lines: off the event loop, so other requests keep flowing.
    result = await asyncio.to_thread(compress_logs, matched, budget)
    result["query"] = query
    return result
