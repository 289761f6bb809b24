"""The one client of Alertmanager's v2 API: silences (docs/vendor-contracts.md §1.4)."""

from datetime import UTC, datetime, timedelta

import httpx

from services.contracts.models import SilenceMatcher

CREATED_BY = "oncall-agent"


class AlertmanagerError(Exception):
    def __init__(self, message: str, transient: bool):
        super().__init__(message)
        self.transient = transient


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
        response = await self._send("POST", "/api/v2/silences", json=body)
        return str(response.json()["silenceID"])

    async def expire_silence(self, silence_id: str) -> None:
        await self._send("DELETE", f"/api/v2/silence/{silence_id}")

    async def _send(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise AlertmanagerError(
                f"Alertmanager unreachable: {exc.__class__.__name__}", transient=True
            ) from exc
        if response.status_code >= 500:
            raise AlertmanagerError(f"Alertmanager answered {response.status_code}", transient=True)
        if response.status_code >= 400:
            raise AlertmanagerError(f"Alertmanager refused: {_reason(response)}", transient=False)
        return response

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
