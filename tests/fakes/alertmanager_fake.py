"""Fake Alertmanager v2 silences API (docs/vendor-contracts.md §1.4); ALERTMANAGER_URL is fake.url."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from .base import FakeHTTPServer, RecordedRequest, Response, json_response

_SILENCE_PATH = re.compile(r"^/api/v2/silence/(?P<id>[^/]+)$")
_REQUIRED = ("matchers", "startsAt", "endsAt", "createdBy", "comment")
_MATCHER_REQUIRED = ("name", "value", "isRegex")


def _swagger_error(code: int, message: str) -> Response:
    """go-swagger's validation answer: 422 with a code and a message."""
    return json_response(422, {"code": code, "message": message})


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


class FakeAlertmanager(FakeHTTPServer):
    """POST /api/v2/silences, GET and DELETE /api/v2/silence/{id}; no authentication, like Alertmanager's."""

    def __init__(self, delay_seconds: float = 0.0) -> None:
        super().__init__(delay_seconds)
        self._silences: dict[str, dict[str, Any]] = {}

    @property
    def silences(self) -> dict[str, dict[str, Any]]:
        """Silences by id: the posted body plus `status.state` (`active` until deleted, then `expired`)."""
        with self._lock:
            return {sid: dict(s) for sid, s in self._silences.items()}

    def fail_next(
        self, status: int, body: Any = "", headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        """Answer the next `times` requests with this status, JSON body and headers (e.g. 503 with
        Retry-After, as a proxy in front of Alertmanager would)."""
        self._inject(json_response(status, body, headers), times)

    def handle(self, req: RecordedRequest) -> Response:
        if injected := self._take_injected():
            return injected
        if req.method == "POST" and req.path == "/api/v2/silences":
            return self._post_silence(req)
        if match := _SILENCE_PATH.match(req.path):
            if req.method == "GET":
                return self._get_silence(match["id"])
            if req.method == "DELETE":
                return self._delete_silence(match["id"])
        return 404, {"Content-Type": "text/plain; charset=utf-8"}, b"404 page not found\n"

    def _post_silence(self, req: RecordedRequest) -> Response:
        try:
            body = req.json()
        except ValueError:
            return json_response(400, {"code": 400, "message": "the body is not JSON"})  # (not observed)
        if not isinstance(body, dict):
            return _swagger_error(602, "silence in body must be of type object")
        for name in _REQUIRED:
            if name not in body:
                return _swagger_error(602, f"{name} in body is required")
        matchers = body["matchers"]
        if not isinstance(matchers, list) or not matchers:
            return _swagger_error(612, "matchers in body should have at least 1 items")
        for i, matcher in enumerate(matchers):
            for name in _MATCHER_REQUIRED:
                if not isinstance(matcher, dict) or name not in matcher:
                    return _swagger_error(602, f"matchers.{i}.{name} in body is required")
        starts, ends = _time(body["startsAt"]), _time(body["endsAt"])
        if starts is None or ends is None:
            return _swagger_error(601, "startsAt in body must be of type date-time")
        if ends < starts:
            return json_response(400, "failed to create silence: start time must be before end time")
        silence_id = str(uuid.uuid4())
        with self._lock:
            self._silences[silence_id] = {**body, "id": silence_id, "status": {"state": "active"}}
        return json_response(200, {"silenceID": silence_id})

    def _get_silence(self, silence_id: str) -> Response:
        with self._lock:
            silence = self._silences.get(silence_id)
        return json_response(200, silence) if silence else (404, {}, b"")

    def _delete_silence(self, silence_id: str) -> Response:
        with self._lock:
            silence = self._silences.get(silence_id)
            if silence is None:
                return 404, {}, b""
            silence["status"] = {"state": "expired"}
        return 200, {}, b""
