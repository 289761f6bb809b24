"""The load balancer log client and the fetch_logs tool against the fake load balancer."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from fakes.base import RecordedRequest, Response
from fakes.logs_fake import FakeLogs

from services.contracts.tools import FetchLogsArgs
from services.tools.errors import BackendError
from services.tools.logs import LogsClient, fetch_logs, service_matches


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

    def __init__(self, status: int, body: bytes = b"upstream exploded") -> None:
        super().__init__()
        self.status, self.body = status, body

    def handle(self, req: RecordedRequest) -> Response:
        return self.status, {"Content-Type": "text/plain"}, self.body


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


async def test_fetch_logs_keeps_the_service_replicas(lb: FakeLogs, http: httpx.AsyncClient) -> None:
    result = await fetch_logs(LogsClient(lb.url, http), FetchLogsArgs(service="inventory"), 12_000)

    assert result["total_lines"] == 3  # the traceback logged line by line is one event
    assert result["levels"] == {"ERROR": 1, "INFO": 1, "DEBUG": 1}
    assert result["stack_traces"][0]["frames"][-1]["line"] == 47
    assert result["query"] == {"service": "inventory", "level": None, "seconds": 300, "lines_scanned": 9}
    assert len(json.dumps(result)) <= 12_000


async def test_level_filter_keeps_whole_traces(lb: FakeLogs, http: httpx.AsyncClient) -> None:
    result = await fetch_logs(LogsClient(lb.url, http), FetchLogsArgs(level="warning"), 12_000)

    assert result["levels"] == {"ERROR": 1, "WARN": 1}
    assert result["stack_traces"][0]["exception"] == "TypeError: 'NoneType' object is not subscriptable"


async def test_an_unknown_level_is_refused_before_asking(lb: FakeLogs, http: httpx.AsyncClient) -> None:
    with pytest.raises(BackendError) as raised:
        await fetch_logs(LogsClient(lb.url, http), FetchLogsArgs(level="LOUD"), 12_000)
    assert raised.value.kind == "bad_request"
    assert "LOUD" in raised.value.message and "ERROR" in raised.value.message
    assert lb.requests == []


async def test_no_match_names_the_services_that_were_there(lb: FakeLogs, http: httpx.AsyncClient) -> None:
    result = await fetch_logs(LogsClient(lb.url, http), FetchLogsArgs(service="inventroy"), 12_000)

    assert result["total_lines"] == 0
    assert result["query"]["services_seen"] == ["checkout-1", "inventory-1", "inventory-2", "inventory-api-1"]


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


async def test_unreachable_and_slow_load_balancers() -> None:
    async with httpx.AsyncClient(timeout=0.2) as http:
        with FakeLogs(delay_seconds=1.0) as slow, pytest.raises(BackendError) as raised:
            await LogsClient(slow.url, http).tail(300, 10)
        assert raised.value.kind == "timeout"

        with pytest.raises(BackendError) as raised:
            await LogsClient("http://127.0.0.1:9", http).tail(300, 10)
        assert raised.value.kind == "unavailable"
        assert raised.value.message.startswith("cannot reach the load balancer")
