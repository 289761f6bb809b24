"""The outbound layer: what a status means, what Retry-After says, and how a call is retried."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.runtime.outbound import (
    OutboundError,
    RetryPolicy,
    is_transient,
    never_sent,
    parse_retry_after,
    provably_unprocessed,
)

NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
# Waits short enough for a unit test; the budget is what stops retries in these tests.
QUICK = RetryPolicy(
    attempts=4, budget_seconds=5.0, first_wait_seconds=0.01, max_wait_seconds=0.02, jitter_seconds=0
)


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (None, True),  # no answer: a timeout, a refused or broken connection
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (408, False),
        (409, False),
        (422, False),
        (200, False),  # an answer we could not use is not fixed by asking again
    ],
)
def test_what_is_transient(status: int | None, transient: bool) -> None:
    assert is_transient(status) is transient


def test_what_was_never_sent() -> None:
    request = httpx.Request("GET", "http://example.invalid")
    assert never_sent(httpx.ConnectError("refused", request=request))
    assert never_sent(httpx.ConnectTimeout("slow", request=request))
    assert not never_sent(httpx.ReadTimeout("lost", request=request))
    assert not never_sent(httpx.RemoteProtocolError("cut", request=request))


@pytest.mark.parametrize(
    ("error", "unprocessed"),
    [
        (OutboundError("x", None, "refused", True, sent=False), True),
        (OutboundError("x", None, "lost answer", True), False),
        (OutboundError("x", 429, "slow down", True), True),
        (OutboundError("x", 503, "busy", True), True),
        (OutboundError("x", 500, "oops", True), False),
    ],
)
def test_what_is_provably_unprocessed(error: OutboundError, unprocessed: bool) -> None:
    assert provably_unprocessed(error) is unprocessed


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 3 ", 3.0),
        ("1.5", 1.5),
        ("-1", 0.0),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),  # IMF-fixdate
        ("Wednesday, 21-Oct-15 07:29:00 GMT", 60.0),  # obsolete RFC 850 form
        ("Wed Oct 21 07:28:10 2015", 10.0),  # obsolete asctime form: GMT, though it does not say so
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # a date already past: go now
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("Wed, 32 Oct 2015 07:28:30 GMT", None),
        ("12 34", None),
    ],
)
def test_retry_after_in_both_forms(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_retry_after_dates_are_read_against_the_clock() -> None:
    in_a_minute = (datetime.now(UTC) + timedelta(seconds=60)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    wait = parse_retry_after(in_a_minute)
    assert wait is not None and 58 <= wait <= 60


class Calls:
    """An attempt that fails with the given errors in turn, then answers "ok"; it notes when it ran."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.times: list[float] = []

    async def __call__(self) -> str:
        self.times.append(time.monotonic())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_transient_errors_are_retried_until_success() -> None:
    calls = Calls(OutboundError("x", 503, "busy", True), OutboundError("x", None, "timeout", True))
    assert await QUICK.call(calls) == "ok"
    assert len(calls.times) == 3


async def test_an_attempt_may_be_a_lambda_returning_a_coroutine() -> None:
    calls = Calls(OutboundError("x", 503, "busy", True))
    assert await QUICK.call(lambda: calls()) == "ok"
    assert len(calls.times) == 2


async def test_a_permanent_error_stops_at_once() -> None:
    calls = Calls(OutboundError("x", 400, "bad request", False))
    with pytest.raises(OutboundError) as raised:
        await QUICK.call(calls)
    assert raised.value.status == 400 and len(calls.times) == 1


async def test_other_exceptions_are_not_retried() -> None:
    calls = Calls(ValueError("a bug"))
    with pytest.raises(ValueError):
        await QUICK.call(calls)
    assert len(calls.times) == 1


async def test_attempts_are_bounded_and_the_last_error_raised() -> None:
    calls = Calls(*(OutboundError("x", 500, f"failure {i}", True) for i in range(10)))
    with pytest.raises(OutboundError, match="failure 3"):
        await QUICK.call(calls)
    assert len(calls.times) == QUICK.attempts


async def test_retry_after_is_honoured_over_a_shorter_backoff() -> None:
    calls = Calls(OutboundError("x", 429, "slow down", True, retry_after=0.3))
    assert await QUICK.call(calls) == "ok"
    first, second = calls.times
    assert second - first >= 0.3


async def test_a_retry_after_past_the_budget_is_left_to_the_caller() -> None:
    calls = Calls(OutboundError("x", 429, "slow down", True, retry_after=60))
    started = time.monotonic()
    with pytest.raises(OutboundError) as raised:
        await QUICK.call(calls)
    assert time.monotonic() - started < 1.0 and len(calls.times) == 1
    assert raised.value.retry_after == 60  # the caller (a consumer's redelivery, the model) waits


async def test_may_retry_can_refuse_a_resend() -> None:
    calls = Calls(OutboundError("x", 500, "maybe done", True))
    with pytest.raises(OutboundError):
        await QUICK.call(calls, may_retry=provably_unprocessed)
    assert len(calls.times) == 1


async def test_only_announced_retries_only_what_said_when() -> None:
    announced = RetryPolicy(attempts=2, budget_seconds=1.0, only_announced=True, jitter_seconds=0)
    unannounced = Calls(OutboundError("x", 503, "busy", True))
    with pytest.raises(OutboundError):
        await announced.call(unannounced)
    assert len(unannounced.times) == 1

    told = Calls(OutboundError("x", 503, "busy", True, retry_after=0.2))
    assert await announced.call(told) == "ok"
    assert len(told.times) == 2


async def test_each_retry_is_logged_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[OutboundError] = []
    calls = Calls(OutboundError("Jira", 503, "busy", True))
    with caplog.at_level(logging.WARNING, logger="oncall.outbound"):
        await QUICK.call(calls, on_retry=seen.append, what="POST /rest/api/3/issue")
    assert [e.status for e in seen] == [503]
    (record,) = caplog.records
    assert record.getMessage().startswith("POST /rest/api/3/issue failed (try 1): busy; retrying in")
