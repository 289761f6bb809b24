"""The one client of the model: OpenAI chat completions (any OpenAI-compatible server)."""

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI

from services.diagnoser.settings import DiagnoserSettings
from services.runtime.redaction import redact_model_message
from services.runtime.text import clip

DEFAULT_HOST = "api.openai.com"  # the SDK's default base URL when OPENAI_BASE_URL is unset
MAX_REASON_CHARS = 160


class ModelError(Exception):
    """The model could not be used for this turn (after the SDK's own retries). `reason` says
    why in a few words a person reads ("timeout after 60 s"); the message is for the log."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


def reason_of(exc: Exception) -> str:
    return exc.reason if isinstance(exc, ModelError) else str(exc)


def host_of(base_url: str | None) -> str:
    """The host (and port, when one is given) the model is asked at; never credentials or path."""
    if not base_url:
        return DEFAULT_HOST
    parts = urlsplit(base_url)
    host = parts.hostname or base_url
    return f"{host}:{parts.port}" if parts.port else host


def failure_reason(exc: openai.OpenAIError, timeout_seconds: float) -> str:
    """Why a call failed, in words fit for the diagnosis footer."""
    if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError, its base class
        return f"timeout after {timeout_seconds:g} s"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        return clip(f"could not connect: {cause}", MAX_REASON_CHARS) if cause else "could not connect"
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return f"HTTP {exc.status_code}: the API key was refused"
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = body.get("message") if isinstance(body.get("message"), str) else None
        reason = f"HTTP {exc.status_code}: {detail}" if detail else f"HTTP {exc.status_code}"
        return clip(reason, MAX_REASON_CHARS)
    return exc.__class__.__name__


@dataclass
class ModelReply:
    message: dict[str, Any]  # the assistant message as a plain dict (stored in KV)
    tokens: int  # prompt + completion tokens the server counted


class ModelClient:
    def __init__(self, settings: DiagnoserSettings):
        assert settings.openai_api_key is not None
        self.model = settings.openai_model
        self.host = host_of(settings.openai_base_url)
        self._timeout = settings.openai_timeout_seconds
        self._client = AsyncOpenAI(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            timeout=settings.openai_timeout_seconds,
            max_retries=2,
        )

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], tool_choice: Any = "auto"
    ) -> ModelReply:
        try:
            response = await self._client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                tools=tools,  # type: ignore[arg-type]
                tool_choice=tool_choice,
                temperature=0.1,
            )
        except openai.OpenAIError as exc:
            raise ModelError(f"{exc.__class__.__name__}: {exc}", failure_reason(exc, self._timeout)) from exc
        if not response.choices:
            raise ModelError("the model returned no choices", "it returned no choices")
        message = response.choices[0].message
        result: dict[str, Any] = {"role": "assistant", "content": message.content}
        if message.tool_calls:
            result["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
                for call in message.tool_calls
                if call.type == "function"
            ]
        # Redacted here, where every answer of the model enters: it quotes the logs it read, and what
        # it writes reaches WhatsApp, Jira and our logs (issue 15, defect 6).
        result = redact_model_message(result)
        tokens = response.usage.total_tokens if response.usage else 0
        return ModelReply(result, tokens)

    async def close(self) -> None:
        await self._client.close()
