"""The one client of the model: OpenAI chat completions (any OpenAI-compatible server)."""

from dataclasses import dataclass
from typing import Any

import openai
from openai import AsyncOpenAI

from services.runtime.settings import Settings


class ModelError(Exception):
    """The model could not be used for this turn (after the SDK's own retries)."""


@dataclass
class ModelReply:
    message: dict[str, Any]  # the assistant message as a plain dict (stored in KV)
    tokens: int  # prompt + completion tokens the server counted


class ModelClient:
    def __init__(self, settings: Settings):
        assert settings.openai_api_key is not None
        self.model = settings.openai_model
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
            raise ModelError(f"{exc.__class__.__name__}: {exc}") from exc
        if not response.choices:
            raise ModelError("the model returned no choices")
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
        tokens = response.usage.total_tokens if response.usage else 0
        return ModelReply(result, tokens)

    async def close(self) -> None:
        await self._client.close()
