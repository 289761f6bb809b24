"""Calls to outside systems: one error, one reading of HTTP statuses and `Retry-After`, one retry policy.

Every client of an outside system (Twilio, Jira, GitHub, Prometheus, Loki, the load balancer,
Alertmanager) raises an `OutboundError`, or a subclass of it that adds what its callers need.
The error says whether the same call may succeed later (`transient`) and, when the system said
so, how long to wait first (`retry_after`). `RetryPolicy.call` retries transient failures within
a small budget; past it the error goes up with its `retry_after`: a durable consumer redelivers
no sooner than that (services/runtime/bus.py), a tool reports it to the model. (The openai SDK
keeps its own retries.)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from services.runtime.times import as_utc

log = logging.getLogger("oncall.outbound")

T = TypeVar("T")

TOO_MANY_REQUESTS = 429
# Answers by which a system turns a request away before acting on it.
REJECTED_UNPROCESSED = frozenset({TOO_MANY_REQUESTS, 503})


class OutboundError(Exception):
    """A call to `system` failed. `status` is the HTTP status it answered, None when no answer
    came (a timeout, a refused or broken connection). `transient`: the same call may succeed
    later; `retry_after`: seconds the system asked to wait before trying again, None when it did
    not say. `sent` is False only when the request provably never reached the system."""

    def __init__(
        self,
        system: str,
        status: int | None,
        message: str,
        transient: bool,
        retry_after: float | None = None,
        *,
        sent: bool = True,
    ) -> None:
        super().__init__(message)
        self.system = system
        self.status = status
        self.message = message
        self.transient = transient
        self.retry_after = retry_after
        self.sent = sent

    def __str__(self) -> str:
        return self.message


# --- what an answer means (pure) ----------------------------------------------------------------


def is_transient(status: int | None) -> bool:
    """May the same request succeed later? Yes after no answer at all (None: a timeout or a
    connection error), 429 (rate limited) and 5xx (the system's own trouble). Any other 4xx
    refuses this very request (bad input, credentials, permissions): sending it again cannot help."""
    return status is None or status == TOO_MANY_REQUESTS or status >= 500


def never_sent(exc: httpx.HTTPError) -> bool:
    """No connection was made, so the system cannot have acted on the request."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


def provably_unprocessed(error: OutboundError) -> bool:
    """The system did not act on the request: it never got it, or turned it away (429, 503).
    Only then may a request that is not idempotent (a create) be sent again at once: after a
    lost answer or a 500, a resend could do the thing twice."""
    return not error.sent or error.status in REJECTED_UNPROCESSED


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (RFC 9110 §10.2.3): delta-seconds, or an
    HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms, which are GMT). A past
    date or a negative number is 0; None when absent or unreadable."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, (as_utc(when) - (now or datetime.now(UTC))).total_seconds())


# --- retries inside one call -------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one call: `attempts` tries in all, and no wait that would end more than
    `budget_seconds` after the first try began. Waits grow exponentially from
    `first_wait_seconds` to `max_wait_seconds`, each plus up to `jitter_seconds`, and are never
    shorter than the system's Retry-After. A Retry-After that does not fit in the budget (the
    cap) ends the retries at once: the error carries it to the caller, which knows better than
    to hold a consumer or a tool call that long. With `only_announced`, a failure is retried only
    when the system said when (a Retry-After that fits), never on a guess."""

    attempts: int = 3
    budget_seconds: float = 10.0
    first_wait_seconds: float = 0.5
    max_wait_seconds: float = 8.0
    jitter_seconds: float = 0.5
    only_announced: bool = False

    def worth_retrying(self, error: OutboundError) -> bool:
        return error.transient and (error.retry_after is not None or not self.only_announced)

    async def call(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        may_retry: Callable[[OutboundError], bool] | None = None,
        on_retry: Callable[[OutboundError], None] | None = None,
        what: str | None = None,
        logger: logging.Logger = log,
    ) -> T:
        """`attempt()` until it returns, or raises what is not worth retrying (anything but a
        transient OutboundError, or one `may_retry` refuses, e.g. a create after a lost answer),
        or the attempts or the budget run out; then its last error is raised as it is.
        Each retry is logged (naming `what`, else the error's system) and passed to `on_retry`."""

        def retry(exc: BaseException) -> bool:
            return (
                isinstance(exc, OutboundError)
                and self.worth_retrying(exc)
                and (may_retry is None or may_retry(exc))
            )

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            name = what or (exc.system if isinstance(exc, OutboundError) else "call")
            logger.warning("%s failed (try %d): %s; retrying in %.1fs", name, state.attempt_number, exc, wait)
            if on_retry is not None and isinstance(exc, OutboundError):
                on_retry(exc)

        async def once() -> T:
            # A coroutine function of its own: tenacity awaits only what it recognises as one
            # (not a lambda returning a coroutine).
            return await attempt()

        retrying = AsyncRetrying(
            retry=retry_if_exception(retry),
            stop=stop_after_attempt(self.attempts) | stop_before_delay(self.budget_seconds),
            wait=self._wait(),
            before_sleep=before_sleep,
            reraise=True,
        )
        result: T = await retrying(once)
        return result

    def _wait(self) -> Callable[[RetryCallState], float]:
        backoff = wait_exponential_jitter(
            multiplier=self.first_wait_seconds, max=self.max_wait_seconds, jitter=self.jitter_seconds
        )

        def wait(state: RetryCallState) -> float:
            delay = float(backoff(state))
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, OutboundError) and exc.retry_after is not None:
                delay = max(delay, exc.retry_after)  # never sooner than the system asked
            return delay

        return wait
