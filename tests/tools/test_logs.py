"""The fetch_logs tool over the fake load balancer (and Loki beside it): filters, window, sources."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fakes.base import RecordedRequest, Response, http_date, wall_clock
from fakes.logs_fake import FakeLogs
from loki_fake import FakeLoki

from services.contracts.tool_results import TimeRange
from services.contracts.tools import FetchLogsArgs
from services.tools.errors import BackendError
from services.tools.log_compression import size_in_tokens
from services.tools.logs import LogsClient, LogSource, fetch_logs, service_matches
from services.tools.loki import LokiClient

NOW = datetime(2026, 11, 24, 6, 0, 10, tzinfo=UTC)


def line(message: str, level: str = "INFO", service: str = "inventory-1", second: int = 0) -> dict[str, str]:
    return {
        "timestamp": f"2026-11-24T06:00:{second:02d}Z",
        "level": level,
        "message": message,
        "service": service,
    }


LINES = [
    line("GET /api/v1/inventory/sku-1 200 5ms", second=1),
    line("POST /api/v1/orders 201 9ms", service="checkout-1", second=2),
    line("Unhandled exception in POST /api/v1/reservations", "ERROR", service="inventory-2", second=3),
    line("Traceback (most recent call last):", "ERROR", service="inventory-2", second=3),
    line(
        '  File "/app/inventory/inventory_service.py", line 47, in reserve_stock',
        "ERROR",
        service="inventory-2",
        second=3,
    ),
    line("    available = entry['available'] - entry['reserved']", "ERROR", service="inventory-2", second=3),
    line("TypeError: 'NoneType' object is not subscriptable", "ERROR", service="inventory-2", second=3),
    line("Slow query 900ms", "WARN", service="inventory-api-1", second=4),
    line("GET /healthz 200 1ms", "DEBUG", second=5),
]


@pytest.fixture
def lb() -> Iterator[FakeLogs]:
    with FakeLogs(LINES) as fake:
        yield fake


class FailingLogs(FakeLogs):
    """The load balancer in trouble: every request is answered with `status`."""

    def __init__(
        self, status: int, body: bytes = b"upstream exploded", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__()
        self.status, self.body, self.headers = status, body, headers or {}

    def handle(self, req: RecordedRequest) -> Response:
        return self.status, {"Content-Type": "text/plain", **self.headers}, self.body


async def test_tail_asks_for_the_window_and_parses_lines(lb: FakeLogs, http: httpx.AsyncClient) -> None:
    entries = await LogsClient(lb.url + "/", http).tail(seconds=120, limit=3)

    assert [e.message for e in entries] == [LINES[-3]["message"], LINES[-2]["message"], LINES[-1]["message"]]
    (request,) = lb.requests
    assert (request.path, request.arg("seconds"), request.arg("limit")) == ("/logs/tail", "120", "3")


async def test_tail_skips_malformed_lines(http: httpx.AsyncClient) -> None:
    with FakeLogs([line("ok"), "not an object", {"message": 42, "timestamp": 1795500262}]) as fake:  # type: ignore[list-item]
        entries = await LogsClient(fake.url, http).tail(300, 10)
    assert [(e.message, e.timestamp) for e in entries] == [
        ("ok", "2026-11-24T06:00:00Z"),
        ("42", "1795500262"),
    ]


@pytest.mark.parametrize(
    ("entry_service", "wanted", "matches"),
    [
        ("inventory-1", "inventory", True),
        ("inventory-12", "inventory", True),
        ("inventory", "inventory", True),
        ("inventory-1", "inventory-1", True),
        ("inventory-api-1", "inventory", False),
        ("inventory2", "inventory", False),
        ("checkout-1", "inventory", False),
    ],
)
def test_service_matches_replicas(entry_service: str, wanted: str, matches: bool) -> None:
    assert service_matches(entry_service, wanted) is matches


def lb_only(lb: FakeLogs, http: httpx.AsyncClient) -> dict[str, LogSource]:
    return {"lb": LogsClient(lb.url, http)}


async def test_fetch_logs_keeps_the_service_replicas(lb: FakeLogs, http: httpx.AsyncClient) -> None:
    result = await fetch_logs(lb_only(lb, http), FetchLogsArgs(service="inventory"), 2000, NOW)

    assert result.total_lines == 3  # the traceback logged line by line is one event
    assert result.levels == {"ERROR": 1, "INFO": 1, "DEBUG": 1}
    assert result.stack_traces[0].frames[-1].line == 47
    assert result.query is not None and result.query.for_model() == {
        "service": "inventory",
        "level": None,
        "seconds": 300,
        "lines_scanned": 9,
        "sources": {"lb": {"seconds": 300, "lines": 9}},
    }
    assert size_in_tokens(result) <= 2000


async def test_level_filter_keeps_whole_traces(lb: FakeLogs, http: httpx.AsyncClient) -> None:
    result = await fetch_logs(lb_only(lb, http), FetchLogsArgs(level="warning"), 2000, NOW)

    assert result.levels == {"ERROR": 1, "WARN": 1}
    assert result.stack_traces[0].exception == "TypeError: 'NoneType' object is not subscriptable"


async def test_an_unknown_level_is_refused_before_asking(lb: FakeLogs, http: httpx.AsyncClient) -> None:
    with pytest.raises(BackendError) as raised:
        await fetch_logs(lb_only(lb, http), FetchLogsArgs(level="LOUD"), 2000, NOW)
    assert raised.value.kind == "bad_request"
    assert "LOUD" in raised.value.message and "ERROR" in raised.value.message
    assert lb.requests == []


async def test_no_match_names_the_services_that_were_there(lb: FakeLogs, http: httpx.AsyncClient) -> None:
    result = await fetch_logs(lb_only(lb, http), FetchLogsArgs(service="inventroy"), 2000, NOW)

    assert result.total_lines == 0
    assert result.query.services_seen == ["checkout-1", "inventory-1", "inventory-2", "inventory-api-1"]


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (500, b"upstream exploded", "unavailable"),
        (200, b"<html>", "unavailable"),
        (200, b'{"a": 1}', "unavailable"),
        (404, b"no such route", "not_found"),
        (400, b"seconds must be an integer", "bad_request"),
    ],
)
async def test_backend_failures_are_backend_errors(
    status: int, body: bytes, kind: str, http: httpx.AsyncClient
) -> None:
    with FailingLogs(status, body) as fake, pytest.raises(BackendError) as raised:
        await LogsClient(fake.url, http).tail(300, 10)
    assert raised.value.kind == kind
    assert "load balancer" in raised.value.message


async def test_a_rate_limited_load_balancer_says_when_to_retry(http: httpx.AsyncClient) -> None:
    with FailingLogs(429, b"slow down", {"Retry-After": "12"}) as fake, pytest.raises(BackendError) as raised:
        await LogsClient(fake.url, http).tail(300, 10)
    assert (raised.value.kind, raised.value.retry_after) == ("rate_limited", 12.0)


async def test_a_429_with_an_http_date_retry_after_is_retried_then(
    lb: FakeLogs, http: httpx.AsyncClient
) -> None:
    retry_at = math.ceil(time.time()) + 1  # 1 to 2 s away: short enough to wait for inside the call
    lb.fail_next(429, b"slow down", {"Retry-After": http_date(retry_at)})

    entries = await LogsClient(lb.url, http).tail(300, 10)

    assert len(entries) == len(LINES)
    _, second = lb.requests
    assert wall_clock(second.started_at) >= retry_at - 0.05  # not before the date the load balancer named


async def test_a_far_http_date_is_reported_with_its_wait(lb: FakeLogs, http: httpx.AsyncClient) -> None:
    lb.fail_next(503, b"draining", {"Retry-After": http_date(time.time() + 60)})

    with pytest.raises(BackendError) as raised:
        await LogsClient(lb.url, http).tail(300, 10)

    error = raised.value
    assert (error.kind, error.transient, error.status) == ("unavailable", True, 503)
    assert error.retry_after is not None and 55 < error.retry_after <= 60
    assert len(lb.requests) == 1  # the model is told at once


async def test_unreachable_and_slow_load_balancers() -> None:
    async with httpx.AsyncClient(timeout=0.2) as http:
        with FakeLogs(delay_seconds=1.0) as slow, pytest.raises(BackendError) as raised:
            await LogsClient(slow.url, http).tail(300, 10)
        assert raised.value.kind == "timeout"

        with pytest.raises(BackendError) as raised:
            await LogsClient("http://127.0.0.1:9", http).tail(300, 10)
        assert raised.value.kind == "unavailable"
        assert raised.value.message.startswith("cannot reach the load balancer")


BASE = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def stamped(second: int, message: str, level: str = "INFO") -> dict[str, str]:
    """A checkout line `second` seconds after 06:00:00."""
    moment = (BASE + timedelta(seconds=second)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"timestamp": moment, "level": level, "message": message, "service": "checkout"}


async def test_around_the_alert_start_the_window_is_cut_and_new_lines_marked(http: httpx.AsyncClient) -> None:
    lines = [
        stamped(-30, "GET /cart 200 3ms"),  # before the window
        stamped(0, "slow query 900ms", "WARN"),
        stamped(20, "payment declined", "ERROR"),
        stamped(50, "GET /cart 200 5ms"),  # after it
    ]
    args = FetchLogsArgs(service="checkout", starts_at=BASE + timedelta(seconds=10), seconds=30)

    with FakeLogs(lines) as lb:
        result = await fetch_logs(lb_only(lb, http), args, 2000, BASE + timedelta(seconds=60))

    assert lb.requests[0].arg("seconds") == "80"  # the tail reaches back to the window's start
    assert result.query.window == TimeRange(start="2026-11-24T05:59:40Z", end="2026-11-24T06:00:40Z")
    assert [(t.level, t.new) for t in result.templates] == [("ERROR", True), ("WARN", False)]


def loki_stream(*lines: tuple[int, str]) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """Checkout's Loki stream: (seconds after 06:00:00, line) as nanosecond entries."""
    base = int(BASE.timestamp()) * 10**9
    return {"service": "checkout", "namespace": "shop"}, [(base + s * 10**9, line) for s, line in lines]


async def test_both_sources_are_merged_in_time_order_without_duplicates(http: httpx.AsyncClient) -> None:
    lb_lines = [stamped(1, "GET /cart 200 3ms"), stamped(4, "payment declined", "ERROR")]
    loki = loki_stream((2, "level=warn msg=slow"), (4, '{"level": "error", "message": "payment declined"}'))
    with FakeLogs(lb_lines) as lb, FakeLoki([loki]) as loki_server:
        sources: dict[str, LogSource] = {
            "lb": LogsClient(lb.url, http),
            "loki": LokiClient(loki_server.url, http),
        }
        result = await fetch_logs(sources, FetchLogsArgs(service="checkout"), 2000, NOW)

    assert result.total_lines == 3
    assert result.query.sources == {
        "lb": {"seconds": 300, "lines": 2},
        "loki": {"selector": '{service="checkout"}', "lines": 2},
    }
    assert [t.level for t in result.templates] == ["ERROR", "WARN", "INFO"]


async def test_one_failing_source_is_reported_beside_the_other(http: httpx.AsyncClient) -> None:
    with FakeLogs([stamped(1, "GET /cart 200 3ms")]) as lb, FakeLoki() as loki_server:
        loki_server.fail(503, "too many outstanding requests")
        sources: dict[str, LogSource] = {
            "lb": LogsClient(lb.url, http),
            "loki": LokiClient(loki_server.url, http),
        }
        result = await fetch_logs(sources, FetchLogsArgs(), 2000, NOW)

    assert result.total_lines == 1
    assert "too many outstanding requests" in result.query.sources["failed"]["loki"]


async def test_all_sources_failing_is_the_error(http: httpx.AsyncClient) -> None:
    with FailingLogs(502, b"bad gateway") as lb, FakeLoki() as loki_server:
        loki_server.fail(429, "rate limited", {"Retry-After": "3"})
        sources: dict[str, LogSource] = {
            "lb": LogsClient(lb.url, http),
            "loki": LokiClient(loki_server.url, http),
        }
        with pytest.raises(BackendError) as raised:
            await fetch_logs(sources, FetchLogsArgs(), 2000, NOW)
    assert raised.value.kind == "unavailable"
    assert "lb: " in raised.value.message and "loki: " in raised.value.message


async def test_an_old_alert_still_gets_the_recent_lines_with_a_note() -> None:
    """Diagnosed hours after the alert started (a replay): the tail has nothing that old."""
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    recent = [{"timestamp": "2026-11-24T08:59:00Z", "level": "ERROR", "message": "boom", "service": "shop-1"}]
    with FakeLogs(recent) as lb:
        async with httpx.AsyncClient() as http:
            args = FetchLogsArgs(service="shop", starts_at=now - timedelta(hours=3))
            result = await fetch_logs({"lb": LogsClient(lb.url, http)}, args, 2000, now)
    assert result.total_lines == 1
    assert "instead" in result.query.note
