"""The Loki client against the fake Loki: the query it sends, the lines it reads, the errors it names."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fakes.base import http_date, wall_clock
from loki_fake import FakeLoki

from services.tools.errors import BackendError
from services.tools.log_query import LogQuery
from services.tools.loki import LokiClient, entry_of, stream_selector

START = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
NS = int(START.timestamp()) * 10**9
CHECKOUT = {"service": "checkout", "namespace": "shop", "pod": "checkout-7d9f-x2"}


def query(**labels: str) -> LogQuery:
    return LogQuery("checkout", START, START + timedelta(minutes=5), 100, START, labels=labels)


@pytest.mark.parametrize(
    ("service", "labels", "selector"),
    [
        ("checkout", None, '{service="checkout"}'),
        (
            "checkout",
            {"alertname": "HighErrorRate", "severity": "critical", "namespace": "shop", "pod": "p-1"},
            '{service="checkout", namespace="shop", pod="p-1"}',  # labels of a stream, not of an alert
        ),
        ('we"ird', None, '{service="we\\"ird"}'),
        (None, None, '{service=~".+"}'),  # Loki refuses a selector that matches everything
    ],
)
def test_stream_selector_from_the_alert_labels(
    service: str | None, labels: dict[str, str] | None, selector: str
) -> None:
    assert stream_selector(service, labels) == selector


@pytest.mark.parametrize(
    ("labels", "line", "level", "message"),
    [
        ({"service": "checkout", "level": "error"}, "payment declined", "error", "payment declined"),
        ({"service_name": "checkout"}, '{"level": "warn", "msg": "slow query"}', "warn", "slow query"),
        (
            {"app": "checkout"},
            '{"severity": "ERROR", "message": "boom", "exc_info": "Traceback (most recent call):\\n..."}',
            "ERROR",
            "boom\nTraceback (most recent call):\n...",
        ),
        ({"job": "shop/checkout"}, 'ts=2026-11-24T06:00:00Z level=info msg="GET /cart"', "info", None),
        ({"container": "checkout"}, "plain text line", "", "plain text line"),
    ],
)
def test_a_line_becomes_an_entry(labels: dict[str, str], line: str, level: str, message: str | None) -> None:
    entry = entry_of(labels, str(NS + 1_500_000_000), line)
    assert entry.timestamp == "2026-11-24T06:00:01.500Z"
    assert entry.level == level
    assert entry.message == (message or line)
    assert entry.service == next(iter(labels.values()))


async def test_query_range_asks_for_the_window_and_returns_lines_oldest_first(
    http: httpx.AsyncClient,
) -> None:
    values = [(NS + i * 10**9, f"line {i}") for i in range(5)]
    with FakeLoki([(CHECKOUT, values), ({"service": "search"}, values)]) as loki:
        entries = await LokiClient(loki.url + "/", http).query_range(
            '{service="checkout"}', START, START + timedelta(seconds=4), limit=3
        )

    assert [e.message for e in entries] == ["line 1", "line 2", "line 3"]  # the newest 3 before `end`
    (request,) = loki.requests
    assert request.arg("start") == str(NS) and request.arg("end") == str(NS + 4 * 10**9)
    assert (request.arg("limit"), request.arg("direction")) == ("3", "backward")


async def test_the_limit_is_kept_under_lokis_maximum(http: httpx.AsyncClient) -> None:
    with FakeLoki([(CHECKOUT, [(NS, "x")])]) as loki:
        await LokiClient(loki.url, http).query_range(
            '{service="checkout"}', START, START + timedelta(1), 10_000
        )
    assert loki.requests[0].arg("limit") == "5000"


async def test_labels_the_streams_lack_are_dropped_rather_than_finding_nothing(
    http: httpx.AsyncClient,
) -> None:
    with FakeLoki([({"service": "checkout"}, [(NS, "payment declined")])]) as loki:
        entries, asked = await LokiClient(loki.url, http).lines(query(namespace="shop"))

    assert [e.message for e in entries] == ["payment declined"]
    assert asked == {"selector": '{service="checkout"}'}
    assert loki.queries == ['{service="checkout", namespace="shop"}', '{service="checkout"}']


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "retry_after"),
    [
        (400, "parse error at line 1, col 5: syntax error", {}, "bad_request", None),
        (429, "Ingestion rate limit exceeded", {"Retry-After": "3"}, "rate_limited", 3.0),
        (500, "internal server error", {}, "unavailable", None),
        (504, "gateway timeout", {}, "timeout", None),
    ],
)
async def test_failures_are_backend_errors(
    status: int,
    body: str,
    headers: dict[str, str],
    kind: str,
    retry_after: float | None,
    http: httpx.AsyncClient,
) -> None:
    with FakeLoki() as loki:
        loki.fail(status, body, headers)
        with pytest.raises(BackendError) as raised:
            await LokiClient(loki.url, http).lines(query())
    assert (raised.value.kind, raised.value.retry_after) == (kind, retry_after)
    assert body in raised.value.message and "Loki" in raised.value.message


async def test_a_429_with_an_http_date_retry_after_is_retried_then(http: httpx.AsyncClient) -> None:
    retry_at = math.ceil(time.time()) + 1  # 1 to 2 s away: short enough to wait for inside the call
    with FakeLoki() as loki:
        loki.fail(429, "Ingestion rate limit exceeded", {"Retry-After": http_date(retry_at)})
        entries = await LokiClient(loki.url, http).query_range('{service="checkout"}', START, START, 10)

    assert entries == []
    _, second = loki.requests
    assert wall_clock(second.started_at) >= retry_at - 0.05  # not before the date Loki named


async def test_lokis_own_refusal_of_a_bad_selector_reaches_the_caller(http: httpx.AsyncClient) -> None:
    with FakeLoki() as loki, pytest.raises(BackendError) as raised:
        await LokiClient(loki.url, http).query_range('{service=~".*"}', START, START + timedelta(1), 10)
    assert raised.value.kind == "bad_request"
    assert "empty-compatible value" in raised.value.message


async def test_a_slow_loki_is_a_timeout() -> None:
    async with httpx.AsyncClient(timeout=0.2) as http:
        with FakeLoki(delay_seconds=1.0) as loki, pytest.raises(BackendError) as raised:
            await LokiClient(loki.url, http).lines(query())
    assert raised.value.kind == "timeout"
