"""Backend failures as data: every client raises `BackendError`, app.py turns it into a ToolResult."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx

from services.contracts.models import ToolErrorKind

# Enough of an error body to say what went wrong without flooding the model's context.
MAX_DETAIL_CHARS = 300


class BackendError(Exception):
    """A tool's backend failed in a way the caller can act on (retry, fix arguments, configure)."""

    def __init__(self, kind: ToolErrorKind, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind: ToolErrorKind = kind
        self.message = message
        self.retry_after = retry_after


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """`Retry-After` as seconds (it may be a number or an HTTP date)."""
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def short_detail(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


def status_error(system: str, response: httpx.Response, detail: str | None = None) -> BackendError:
    """The usual meaning of an HTTP error status; clients special-case what their API does differently."""
    status = response.status_code
    message = f"{system} answered HTTP {status}: {detail if detail is not None else short_detail(response)}"
    if status == 429:
        return BackendError("rate_limited", message, retry_after_seconds(response.headers))
    if status in (401, 403):
        return BackendError("unavailable", f"{message} (check the credentials configured for {system})")
    if status == 404:
        return BackendError("not_found", message)
    if status in (408, 504):
        return BackendError("timeout", message)
    if 400 <= status < 500:
        return BackendError("bad_request", message)
    return BackendError("unavailable", message, retry_after_seconds(response.headers))


def transport_error(system: str, exc: httpx.HTTPError) -> BackendError:
    """A request that got no HTTP answer: timeouts and connection failures."""
    if isinstance(exc, httpx.TimeoutException):
        return BackendError("timeout", f"{system} did not answer in time ({exc.__class__.__name__})")
    reason = str(exc) or exc.__class__.__name__
    return BackendError("unavailable", f"cannot reach {system}: {reason}")


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
        raise BackendError("unavailable", message) from exc
