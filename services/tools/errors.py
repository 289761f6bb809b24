"""Backend failures as data: every client raises `BackendError`, app.py turns it into a ToolResult.

A `BackendError` is the outbound error (services/runtime/outbound.py) with the kind the model
sees. Reads go under `READ_RETRY`: the model waits for the answer, so a tool retries only what
its backend said to retry soon (a Retry-After that fits); any other failure is reported at once,
with its Retry-After, and the model or the diagnoser decides.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from services.contracts.models import ToolErrorKind
from services.runtime.outbound import OutboundError, RetryPolicy, is_transient, never_sent, parse_retry_after
from services.runtime.text import clip

T = TypeVar("T")

# Enough of an error body to say what went wrong without flooding the model's context.
MAX_DETAIL_CHARS = 300
# One more try when the backend asked for a wait of at most ~2.5 s; well inside the tool's time limit.
READ_RETRY = RetryPolicy(attempts=2, budget_seconds=2.5, only_announced=True)
# Kinds of failure that may pass by themselves, when no HTTP status says otherwise.
_TRANSIENT_KINDS: frozenset[ToolErrorKind] = frozenset({"rate_limited", "timeout", "unavailable"})


class BackendError(OutboundError):
    """A tool's backend failed in a way the caller can act on (retry, fix arguments, configure)."""

    def __init__(
        self,
        kind: ToolErrorKind,
        message: str,
        retry_after: float | None = None,
        *,
        system: str = "",
        status: int | None = None,
        transient: bool | None = None,
        sent: bool = True,
    ) -> None:
        if transient is None:
            transient = kind in _TRANSIENT_KINDS
        super().__init__(system, status, message, transient, retry_after, sent=sent)
        self.kind: ToolErrorKind = kind


async def retrying(attempt: Callable[[], Awaitable[T]], what: str) -> T:
    """`attempt` (one request to a backend and the judgement of its answer) under `READ_RETRY`."""
    return await READ_RETRY.call(attempt, what=what)


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """`Retry-After` as seconds (it may be a number or an HTTP date)."""
    return parse_retry_after(headers.get("retry-after"))


def short_detail(response: httpx.Response) -> str:
    return clip(" ".join(response.text.split()), MAX_DETAIL_CHARS)


def status_error(system: str, response: httpx.Response, detail: str | None = None) -> BackendError:
    """The usual meaning of an HTTP error status; clients special-case what their API does differently."""
    status = response.status_code
    message = f"{system} answered HTTP {status}: {detail if detail is not None else short_detail(response)}"
    kind: ToolErrorKind
    retry_after = None
    if status == 429:
        kind, retry_after = "rate_limited", retry_after_seconds(response.headers)
    elif status in (401, 403):
        kind, message = "unavailable", f"{message} (check the credentials configured for {system})"
    elif status == 404:
        kind = "not_found"
    elif status in (408, 504):
        kind = "timeout"
    elif 400 <= status < 500:
        kind = "bad_request"
    else:
        kind, retry_after = "unavailable", retry_after_seconds(response.headers)
    return BackendError(
        kind, message, retry_after, system=system, status=status, transient=is_transient(status)
    )


def transport_error(system: str, exc: httpx.HTTPError) -> BackendError:
    """A request that got no HTTP answer: timeouts and connection failures."""
    sent = not never_sent(exc)
    if isinstance(exc, httpx.TimeoutException):
        message = f"{system} did not answer in time ({exc.__class__.__name__})"
        return BackendError("timeout", message, system=system, transient=True, sent=sent)
    reason = str(exc) or exc.__class__.__name__
    return BackendError(
        "unavailable", f"cannot reach {system}: {reason}", system=system, transient=True, sent=sent
    )


async def get(
    http: httpx.AsyncClient,
    system: str,
    url: str,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """GET with transport failures as `BackendError`; the caller judges the status."""
    try:
        return await http.get(url, params=params, headers=headers)
    except httpx.HTTPError as exc:
        raise transport_error(system, exc) from exc


def json_body(system: str, response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        message = f"{system} answered with invalid JSON: {short_detail(response)}"
        raise BackendError("unavailable", message, system=system, status=response.status_code) from exc
