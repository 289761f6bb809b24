"""Fake of the seed's load balancer log endpoint: GET /logs/tail?seconds=&limit= (DESIGN.md, LB_URL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import FakeHTTPServer, RecordedRequest, Response, json_response


class FakeLogs(FakeHTTPServer):
    """Serves `lines` (oldest first) as given; `limit` keeps the newest entries, newest last.

    `seconds` is validated but does not filter: canned lines keep fixed timestamps, which a time
    window relative to "now" would silently drop.
    """

    def __init__(self, lines: Sequence[dict[str, Any]] = (), delay_seconds: float = 0.0) -> None:
        super().__init__(delay_seconds)
        self.lines = list(lines)

    def fail_next(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        """Answer the next `times` tail requests with this status, e.g. a load balancer's 429 or 503
        with Retry-After."""
        self._inject((status, {"Content-Type": "text/plain", **(headers or {})}, body), times)

    def handle(self, req: RecordedRequest) -> Response:
        if req.method != "GET" or req.path != "/logs/tail":
            return json_response(404, {"error": "not found"})
        if injected := self._take_injected():
            return injected
        params: dict[str, int] = {}
        for name, default in (("seconds", "300"), ("limit", "2000")):
            raw = req.arg(name, default) or default
            try:
                params[name] = int(raw)
            except ValueError:
                return json_response(400, {"error": f"{name} must be an integer, got {raw!r}"})
            if params[name] < 0:
                return json_response(400, {"error": f"{name} must not be negative"})
        return json_response(200, self.lines[-params["limit"] :] if params["limit"] else [])
