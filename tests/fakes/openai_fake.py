"""Fake OpenAI Chat Completions API (docs/vendor-contracts.md §6), answering from a script of steps."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .base import FakeHTTPServer, RecordedRequest, Response, json_response

CHAT_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class ErrorStep:
    """A scripted error answer; build it with FakeOpenAI.error()."""

    status: int
    message: str
    retry_after: float | None = None


# A step is an assistant-message dict, an error, or a callable computing either from the request JSON.
Step = dict[str, Any] | ErrorStep | Callable[[dict[str, Any]], "dict[str, Any] | ErrorStep"]


def tool_call(name: str, arguments: dict[str, Any] | str, call_id: str | None = None) -> dict[str, Any]:
    """One entry of a step's "tool_calls"; arguments may be a raw string to simulate malformed JSON."""
    return {"name": name, "arguments": arguments, "id": call_id}


def _error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    if status == 401:
        kind, code = "invalid_request_error", "invalid_api_key"
    elif status == 429:
        kind, code = "requests", "rate_limit_exceeded"
    elif status >= 500:
        kind, code = "server_error", None
    else:
        kind, code = "invalid_request_error", None
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _tool_call_error(messages: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The API's 400 for tool messages that do not pair up with the preceding assistant tool_calls."""
    pending: set[str] = set()
    pending_at = 0
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role == "tool":
            if msg.get("tool_call_id") not in pending:
                return (
                    f"messages.[{i}].role",
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                    "message with 'tool_calls'.",
                )
            pending.discard(msg["tool_call_id"])
            continue
        if pending:
            break
        if role == "assistant" and msg.get("tool_calls"):
            pending = {str(c.get("id")) for c in msg["tool_calls"]}
            pending_at = i
    if pending:
        return (
            f"messages.[{pending_at}].role",
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: "
            f"{', '.join(sorted(pending))}",
        )
    return None


def _usage(messages: list[dict[str, Any]], answer: dict[str, Any]) -> dict[str, int]:
    """Token counts like a server's, approximated as 4 characters a token of the JSON."""
    prompt, completion = len(json.dumps(messages)) // 4, len(json.dumps(answer)) // 4
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class FakeOpenAI(FakeHTTPServer):
    """POST /v1/chat/completions; point the SDK at base_url=fake.url + "/v1".

    Each accepted request consumes the next script step; the last step repeats once the script runs out.
    Unauthenticated or malformed requests answer with an error and consume nothing.
    """

    def __init__(self, script: Sequence[Step] = (), api_key: str = "sk-test", delay_seconds: float = 0.0):
        super().__init__(delay_seconds)
        self.api_key = api_key
        self.script: list[Step] = list(script) or [{"content": "ok"}]
        self._next_step = 0

    tool_call = staticmethod(tool_call)

    @staticmethod
    def error(status: int, message: str, retry_after: float | None = None) -> ErrorStep:
        return ErrorStep(status, message, retry_after)

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """JSON bodies of every chat completion request received, in order (SDK retries included)."""
        return [r.json() for r in self.requests if r.method == "POST" and r.path == CHAT_PATH]

    def handle(self, req: RecordedRequest) -> Response:
        if req.method != "POST" or req.path != CHAT_PATH:
            return json_response(404, _error_body(404, f"Invalid URL ({req.method} {req.path})"))
        if req.headers.get("authorization") != f"Bearer {self.api_key}":
            return json_response(
                401,
                _error_body(
                    401,
                    "Incorrect API key provided. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                ),
            )
        try:
            body = req.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return json_response(400, _error_body(400, "We could not parse the JSON body of your request."))
        for required in ("model", "messages"):
            if required not in body:
                return json_response(
                    400, _error_body(400, f"Missing required parameter: '{required}'.", required)
                )
        messages = body["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return json_response(
                400,
                _error_body(400, "Invalid type for 'messages': expected an array of objects.", "messages"),
            )
        if body.get("stream"):
            # Streaming is not implemented here; fail loudly instead of answering in the wrong format.
            return json_response(400, _error_body(400, "FakeOpenAI does not support stream=true.", "stream"))
        if problem := _tool_call_error(messages):
            param, message = problem
            return json_response(400, _error_body(400, message, param))

        step = self._take_step()
        if callable(step):
            step = step(body)
        if isinstance(step, ErrorStep):
            headers = {} if step.retry_after is None else {"Retry-After": f"{step.retry_after:g}"}
            return json_response(step.status, _error_body(step.status, step.message), headers)
        return json_response(
            200, self._completion(body["model"], step, body["messages"]), {"x-request-id": uuid.uuid4().hex}
        )

    def _take_step(self) -> Step:
        with self._lock:
            step = self.script[min(self._next_step, len(self.script) - 1)]
            self._next_step += 1
        return step

    @staticmethod
    def _completion(model: str, step: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
        content = step.get("content")
        if isinstance(content, dict | list):  # convenience for json_schema answers
            content = json.dumps(content)
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        calls = [
            {
                "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": call["arguments"]
                    if isinstance(call["arguments"], str)
                    else json.dumps(call["arguments"]),
                },
            }
            for call in step.get("tool_calls") or []
        ]
        if calls:
            message["tool_calls"] = calls
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": step.get("finish_reason") or ("tool_calls" if calls else "stop"),
                    "logprobs": None,
                    "message": message,
                }
            ],
            "usage": _usage(messages, message),
        }
