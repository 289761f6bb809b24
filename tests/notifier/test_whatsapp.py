"""The Twilio client: retries inside a send, templates, and what Twilio's errors mean."""

import json
import math
import time
from collections.abc import Callable

import pytest
from fakes import FakeTwilio
from fakes.base import http_date, wall_clock
from twilio.base.exceptions import TwilioRestException

from services.notifier.delivery import SendError
from services.notifier.settings import NotifierSettings
from services.notifier.whatsapp import RetryPolicy, WhatsAppClient, send_error
from services.runtime import metrics
from services.runtime.outbound import parse_retry_after

TO = "+15551230001"
TEMPLATE_SID = "HX" + "c" * 32
QUICK_RETRY = RetryPolicy(attempts=3, budget_seconds=2.0, first_wait_seconds=0.01, max_wait_seconds=0.02)

MakeSettings = Callable[..., NotifierSettings]


def retries_counted() -> float:
    labels = {"channel": "whatsapp", "outcome": "retried"}
    return metrics.REGISTRY.get_sample_value("oncall_whatsapp_messages_total", labels) or 0.0


@pytest.fixture
def client(make_settings: MakeSettings) -> WhatsAppClient:
    # The product's own retry policy: these tests are about its timing.
    return WhatsAppClient.from_settings(make_settings(TWILIO_TEMPLATE_SID=TEMPLATE_SID))


async def test_a_rate_limit_is_waited_out_as_twilio_asks(twilio: FakeTwilio, client: WhatsAppClient) -> None:
    twilio.fail_next(429, 20429, "Too Many Requests", retry_after=1)
    before = retries_counted()

    started = time.monotonic()
    sid = await client.send(TO, "hello")
    elapsed = time.monotonic() - started

    (message,) = twilio.messages
    assert message["sid"] == sid and message["Body"] == "hello"
    first, second = twilio.requests
    assert second.started_at - first.finished_at >= 1.0  # Retry-After: 1, honoured
    assert elapsed < 3.0
    assert retries_counted() - before == 1


async def test_a_rate_limit_until_an_http_date_is_waited_out_until_then(
    twilio: FakeTwilio, client: WhatsAppClient
) -> None:
    retry_at = math.ceil(time.time()) + 1  # 1 to 2 s away, in whole seconds as HTTP-dates are
    twilio.fail_next(429, 20429, "Too Many Requests", retry_after=http_date(retry_at))

    sid = await client.send(TO, "hello")

    (message,) = twilio.messages
    assert message["sid"] == sid
    first, second = twilio.requests
    assert wall_clock(second.started_at) >= retry_at - 0.05  # not before the date Twilio named
    assert second.started_at - first.finished_at < 3.0


async def test_twilio_failing_twice_then_answering_sends_once(
    twilio: FakeTwilio, client: WhatsAppClient
) -> None:
    twilio.fail_next(500, 20500, "Internal Server Error", times=2)

    started = time.monotonic()
    await client.send(TO, "hello")
    elapsed = time.monotonic() - started

    assert len(twilio.requests) == 3
    assert len(twilio.messages) == 1
    # Backoff grows (0.5 s, then 1 s, each plus up to 0.5 s of jitter) and stays bounded.
    first, second, third = twilio.requests
    assert second.started_at - first.finished_at >= 0.5
    assert third.started_at - second.finished_at >= 1.0
    assert elapsed < 4.0


async def test_retries_are_bounded_then_the_error_is_transient(
    twilio: FakeTwilio, make_settings: MakeSettings
) -> None:
    client = WhatsAppClient.from_settings(make_settings(), retry=QUICK_RETRY)
    twilio.fail_next(503, 20503, "Service Unavailable", times=10)

    with pytest.raises(SendError) as raised:
        await client.send(TO, "hello")

    assert len(twilio.requests) == QUICK_RETRY.attempts
    assert not raised.value.permanent and raised.value.status == 503
    assert twilio.messages == []


async def test_a_retry_after_beyond_the_budget_is_left_to_the_redelivery(
    twilio: FakeTwilio, client: WhatsAppClient
) -> None:
    twilio.fail_next(429, 20429, "Too Many Requests", retry_after=60)

    started = time.monotonic()
    with pytest.raises(SendError) as raised:
        await client.send(TO, "hello")

    assert time.monotonic() - started < 1.0  # no point waiting a minute inside a consumer
    assert len(twilio.requests) == 1
    assert not raised.value.permanent and raised.value.retry_after == 60


async def test_a_permanent_error_is_not_retried(twilio: FakeTwilio, client: WhatsAppClient) -> None:
    twilio.fail_next(400, 21211, "The 'To' number is not a valid phone number.")

    with pytest.raises(SendError) as raised:
        await client.send(TO, "hello")

    assert len(twilio.requests) == 1
    assert raised.value.permanent and raised.value.code == 21211
    assert "not a valid phone number" in raised.value.message
    assert "\033[" not in raised.value.message  # not the SDK's colourised text


async def test_a_template_carries_content_sid_and_variables_and_no_body(
    twilio: FakeTwilio, client: WhatsAppClient
) -> None:
    sid = await client.send_template(TO, "#a1b2c3 HighErrorRate on checkout")

    (message,) = twilio.messages
    assert message["sid"] == sid
    assert message["ContentSid"] == TEMPLATE_SID
    assert json.loads(message["ContentVariables"]) == {"1": "#a1b2c3 HighErrorRate on checkout"}
    assert "Body" not in message
    assert message["StatusCallback"] == "https://oncall.example.com/webhook/twilio/status"


async def test_without_a_template_nothing_is_sent(twilio: FakeTwilio, make_settings: MakeSettings) -> None:
    client = WhatsAppClient.from_settings(make_settings())

    with pytest.raises(SendError) as raised:
        await client.send_template(TO, "#a1b2c3 HighErrorRate")

    assert raised.value.permanent and "TWILIO_TEMPLATE_SID" in raised.value.message
    assert twilio.requests == []


def test_what_is_permanent() -> None:
    def refused(status: int) -> SendError:
        uri = "/2010-04-01/Accounts/AC1/Messages.json"
        return send_error(TwilioRestException(status, uri, "Unable to create record", 20000), None)

    assert refused(400).permanent and refused(404).permanent
    assert not refused(429).permanent and not refused(500).permanent and not refused(503).permanent


def test_retry_after() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-1") == 0.0
