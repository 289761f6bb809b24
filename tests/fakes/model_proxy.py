"""A recording pass-through to a real OpenAI-compatible server (the local llama-server): what the
product asked and what the model answered, for tests that assert the model's own tool calls."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from .base import FakeHTTPServer, RecordedRequest, Response, json_response

CHAT_PATH = "/v1/chat/completions"


@dataclass
class Exchange:
    request: dict[str, Any]
    status: int
    response: dict[str, Any]

    @property
    def message(self) -> dict[str, Any]:
        choices = self.response.get("choices") or [{}]
        message: dict[str, Any] = choices[0].get("message") or {}
        return message

    def tool_calls(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, arguments) of each call the model made, arguments parsed when they are JSON."""
        calls = []
        for call in self.message.get("tool_calls") or []:
            try:
                args = json.loads(call["function"]["arguments"] or "{}")
            except ValueError:
                args = {"unparsed": call["function"]["arguments"]}
            calls.append((call["function"]["name"], args))
        return calls


class ModelProxy(FakeHTTPServer):
    """POST /v1/chat/completions forwarded to `upstream` (a base URL ending in /v1); point the
    product at proxy.url + "/v1". Any API key is accepted, as llama-server does."""

    api_key = "sk-local"

    def __init__(self, upstream: str, timeout: float = 600.0):
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.timeout = timeout
        self.exchanges: list[Exchange] = []

    def handle(self, req: RecordedRequest) -> Response:
        if req.method != "POST" or req.path != CHAT_PATH:
            return json_response(404, {"error": {"message": f"not proxied: {req.method} {req.path}"}})
        answer = httpx.post(
            self.upstream + "/chat/completions",
            content=req.body,
            headers={"Content-Type": "application/json"},
            timeout=self.timeout,
        )
        try:
            body = answer.json()
        except ValueError:
            body = {"error": {"message": answer.text}}
        with self._lock:
            self.exchanges.append(Exchange(req.json(), answer.status_code, body))
        return answer.status_code, {"Content-Type": "application/json"}, answer.content
