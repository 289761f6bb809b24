"""The Alertmanager client against the fake v2 API: the silence it posts, and what its failures mean."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fakes import FakeAlertmanager
from fakes.base import http_date, wall_clock

from services.alert_ingest.alertmanager import AlertmanagerClient, AlertmanagerError
from services.contracts.models import SilenceMatcher

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
MATCHERS = [
    SilenceMatcher(name="alertname", value="HighErrorRate"),
    SilenceMatcher(name="service", value="x"),
]


@pytest.fixture
def alertmanager() -> Iterator[FakeAlertmanager]:
    with FakeAlertmanager() as fake:
        yield fake


async def silence(fake: FakeAlertmanager) -> str:
    client = AlertmanagerClient(fake.url)
    try:
        return await client.create_silence(MATCHERS, timedelta(hours=2), "from WhatsApp", now=NOW)
    finally:
        await client.aclose()


def posts(fake: FakeAlertmanager) -> list[float]:
    return [r.started_at for r in fake.requests if r.method == "POST"]


async def test_a_silence_is_posted_as_the_v2_api_wants_then_expired(alertmanager: FakeAlertmanager) -> None:
    silence_id = await silence(alertmanager)

    posted = alertmanager.silences[silence_id]
    assert posted["matchers"] == [
        {"name": "alertname", "value": "HighErrorRate", "isRegex": False, "isEqual": True},
        {"name": "service", "value": "x", "isRegex": False, "isEqual": True},
    ]
    assert (posted["startsAt"], posted["endsAt"]) == ("2026-11-24T06:00:00Z", "2026-11-24T08:00:00Z")
    assert (posted["createdBy"], posted["comment"]) == ("oncall-agent", "from WhatsApp")

    client = AlertmanagerClient(alertmanager.url)
    try:
        await client.expire_silence(silence_id)
    finally:
        await client.aclose()
    assert alertmanager.silences[silence_id]["status"] == {"state": "expired"}


async def test_a_429_with_an_http_date_retry_after_is_retried_then(alertmanager: FakeAlertmanager) -> None:
    retry_at = math.ceil(time.time()) + 1  # 1 to 2 s away, in whole seconds as HTTP-dates are
    alertmanager.fail_next(429, "too many requests", {"Retry-After": http_date(retry_at)})

    silence_id = await silence(alertmanager)

    assert list(alertmanager.silences) == [silence_id]
    _, second = posts(alertmanager)
    assert wall_clock(second) >= retry_at - 0.05  # not before the date named


async def test_a_500_on_create_is_transient_but_not_resent_at_once(alertmanager: FakeAlertmanager) -> None:
    # Alertmanager may have made the silence before failing: the consumer's redelivery decides.
    alertmanager.fail_next(500, "internal error")

    with pytest.raises(AlertmanagerError) as raised:
        await silence(alertmanager)

    assert (raised.value.status, raised.value.transient) == (500, True)
    assert len(posts(alertmanager)) == 1


async def test_a_refusal_is_permanent_and_says_why(alertmanager: FakeAlertmanager) -> None:
    alertmanager.fail_next(422, {"code": 612, "message": "matchers in body should have at least 1 items"})

    with pytest.raises(AlertmanagerError) as raised:
        await silence(alertmanager)

    assert (raised.value.status, raised.value.transient) == (422, False)
    assert str(raised.value) == "Alertmanager refused: 422 matchers in body should have at least 1 items"
    assert len(posts(alertmanager)) == 1


async def test_an_expiry_is_retried_after_a_503(alertmanager: FakeAlertmanager) -> None:
    silence_id = await silence(alertmanager)
    alertmanager.fail_next(503, "", {"Retry-After": "0"})

    client = AlertmanagerClient(alertmanager.url)
    try:
        await client.expire_silence(silence_id)  # a DELETE may be sent again: it is idempotent
    finally:
        await client.aclose()

    assert [r.method for r in alertmanager.requests] == ["POST", "DELETE", "DELETE"]
    assert alertmanager.silences[silence_id]["status"] == {"state": "expired"}


async def test_unreachable_alertmanager_is_transient() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = AlertmanagerClient(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(AlertmanagerError) as raised:
            await client.expire_silence("abc")
    finally:
        await client.aclose()

    assert (raised.value.status, raised.value.transient, raised.value.sent) == (None, True, False)
    assert str(raised.value) == "Alertmanager unreachable: ConnectError"
