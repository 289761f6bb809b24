"""The one client of Alertmanager's v2 API: silences (docs/vendor-contracts.md §1.4).

Calls go under the outbound retry policy (services/runtime/outbound.py); a transient failure left
after it raises, and the silence consumer redelivers no sooner than Alertmanager's Retry-After.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx

from services.contracts.models import SilenceMatcher
from services.runtime.outbound import (
    OutboundError,
    RetryPolicy,
    is_transient,
    never_sent,
    parse_retry_after,
    provably_unprocessed,
)

CREATED_BY = "oncall-agent"
SYSTEM = "Alertmanager"
# 3 tries within 10 s, waits from 0.5 s to 4 s: a silence is asked for by a person waiting for the answer.
ALERTMANAGER_RETRY = RetryPolicy(attempts=3, budget_seconds=10.0, max_wait_seconds=4.0)


class AlertmanagerError(OutboundError):
    """A failed Alertmanager call; `transient` by the outbound status classifier."""

    def __init__(
        self, status: int | None, message: str, retry_after: float | None = None, sent: bool = True
    ) -> None:
        super().__init__(SYSTEM, status, message, is_transient(status), retry_after, sent=sent)


class AlertmanagerClient:
    def __init__(self, base_url: str, timeout: float = 10.0):
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

    async def create_silence(
        self, matchers: list[SilenceMatcher], duration: timedelta, comment: str, now: datetime | None = None
    ) -> str:
        starts = now or datetime.now(UTC)
        body = {
            "matchers": [m.model_dump(by_alias=True) for m in matchers],
            "startsAt": starts.isoformat().replace("+00:00", "Z"),
            "endsAt": (starts + duration).isoformat().replace("+00:00", "Z"),
            "createdBy": CREATED_BY,
            "comment": comment,
        }
        # Not idempotent: resent at once only when Alertmanager provably did not make the silence.
        response = await self._call("POST", "/api/v2/silences", provably_unprocessed, json=body)
        return str(response.json()["silenceID"])

    async def expire_silence(self, silence_id: str) -> None:
        await self._call("DELETE", f"/api/v2/silence/{silence_id}", None)

    async def _call(
        self,
        method: str,
        path: str,
        may_retry: Callable[[OutboundError], bool] | None,
        **kwargs: object,
    ) -> httpx.Response:
        return await ALERTMANAGER_RETRY.call(
            lambda: self._send(method, path, **kwargs), may_retry=may_retry, what=f"{SYSTEM} {method} {path}"
        )

    async def _send(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            message = f"Alertmanager unreachable: {exc.__class__.__name__}"
            raise AlertmanagerError(None, message, sent=not never_sent(exc)) from exc
        if response.is_success:
            return response
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if is_transient(response.status_code):
            message = f"Alertmanager answered {response.status_code}"
        else:
            message = f"Alertmanager refused: {_reason(response)}"
        raise AlertmanagerError(response.status_code, message, retry_after)

    async def aclose(self) -> None:
        await self._http.aclose()


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:200]}"
    if isinstance(body, dict) and body.get("message"):
        return f"{response.status_code} {body['message']}"
    return f"{response.status_code} {str(body)[:200]}"
