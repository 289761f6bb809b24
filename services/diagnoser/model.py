"""The one client of the model: OpenAI chat completions (any OpenAI-compatible server)."""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

from services.contracts import tools
from services.diagnoser.context import fit_to_context
from services.diagnoser.costs import Prices
from services.diagnoser.settings import DiagnoserSettings
from services.diagnoser.textcalls import calls_in_text
from services.runtime.outbound import is_transient, parse_retry_after
from services.runtime.redaction import redact_model_message
from services.runtime.text import clip

log = logging.getLogger("oncall.diagnoser.model")

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
    prompt_tokens: int = 0
    cut_chars: int = 0  # tool output left out of the request to fit the context
    completion_tokens: int = 0

    def plus_tokens_of(self, other: "ModelReply") -> "ModelReply":
        """This reply, counting an attempt whose answer was not used as well."""
        self.tokens += other.tokens
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        return self


# How the server is made to conclude with send_diagnosis, in the order tried. "required": only
# send_diagnosis offered, tool_choice "required" (llama.cpp ignores tool_choice naming a function
# and treats it as "auto"); "json_schema": no tools, response_format with the diagnosis's schema;
# "named": tool_choice naming the function (OpenAI's way).
ForceMode = Literal["required", "json_schema", "named"]
FORCE_MODES: tuple[ForceMode, ...] = ("required", "json_schema", "named")
# The retries after a failed attempt (timeout, connection, 429, 5xx), within the deadline.
RETRIES = 2
FIRST_RETRY_WAIT_SECONDS = 0.5
# An attempt is not started with less time than this left: it could not finish.
MIN_ATTEMPT_SECONDS = 1.0


def retry_wait(exc: openai.OpenAIError, retry: int) -> float:
    """Seconds before retry number `retry` (1, 2, ...): the server's Retry-After, else doubling."""
    if isinstance(exc, openai.APIStatusError):
        announced = parse_retry_after(exc.response.headers.get("retry-after"))
        if announced is not None:
            return announced
    return float(FIRST_RETRY_WAIT_SECONDS * 2 ** (retry - 1))


def transient(exc: openai.OpenAIError) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        return True
    return isinstance(exc, openai.APIStatusError) and is_transient(exc.status_code)


def refused_request(exc: Exception) -> bool:
    """The server refused the request's shape (400, 422, 501): a parameter it does not support."""
    cause = exc.__cause__ if isinstance(exc, ModelError) else exc
    return isinstance(cause, openai.APIStatusError) and cause.status_code in (400, 422, 501)


def send_diagnosis_schema() -> dict[str, Any]:
    schema = tools.openai_tool(tools.SEND_DIAGNOSIS)["function"]["parameters"]
    return {"type": "json_schema", "json_schema": {"name": tools.SEND_DIAGNOSIS.name, "schema": schema}}


class ModelClient:
    def __init__(self, settings: DiagnoserSettings):
        assert settings.openai_api_key is not None
        self.model = settings.openai_model
        self.host = host_of(settings.openai_base_url)
        self.budget_seconds = settings.model_budget_seconds
        self.context_tokens = settings.model_context_tokens
        self.max_output_tokens = settings.model_max_output_tokens
        self.prices = Prices(settings.price_input_per_1k_usd, settings.price_output_per_1k_usd)
        # What this server honours to force the conclusion, once known (learnt at the first
        # forced step, kept for the process's life).
        self.force_mode: ForceMode | None = None
        # Whether it concludes when asked with the tools kept (None: not tried yet).
        self.asked_concludes: bool | None = None
        self._timeout = settings.openai_timeout_seconds
        self._client = AsyncOpenAI(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            timeout=settings.openai_timeout_seconds,
            max_retries=0,  # retried here, within the incident's deadline
        )

    def deadline(self) -> float:
        """The monotonic time by which the model's part of an incident (or a turn) must be over."""
        return time.monotonic() + self.budget_seconds

    async def complete(
        self,
        messages: list[dict[str, Any]],
        offered: list[dict[str, Any]],
        tool_choice: Any = "auto",
        deadline: float | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> ModelReply:
        """One answer of the model, fitted to its context; calls it wrote as text in `content` are
        read as tool calls. Raises ModelError when no attempt succeeded before `deadline`."""
        deadline = deadline if deadline is not None else self.deadline()
        fitted = fit_to_context(messages, offered or None, self.context_tokens, self.max_output_tokens)
        if fitted.cut_chars:
            log.info("request cut by %d characters to fit %d tokens", fitted.cut_chars, self.context_tokens)
        extra: dict[str, Any] = {}
        if offered:
            extra |= {"tools": offered, "tool_choice": tool_choice}
        if response_format is not None:
            extra["response_format"] = response_format
        response = await self._attempts(fitted.messages, fitted.max_tokens, extra, deadline)
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
        else:
            names = {t["function"]["name"] for t in offered}
            if written := calls_in_text(message.content, names):
                result = {"role": "assistant", "content": None, "tool_calls": written}
        # Redacted here, where every answer of the model enters: it quotes the logs it read, and what
        # it writes reaches WhatsApp, Jira and our logs (issue 15, defect 6).
        result = redact_model_message(result)
        usage = response.usage
        tokens = usage.total_tokens if usage else 0
        return ModelReply(
            result,
            tokens,
            usage.prompt_tokens if usage else 0,
            fitted.cut_chars,
            usage.completion_tokens if usage else 0,
        )

    async def _attempts(
        self, messages: list[dict[str, Any]], max_tokens: int, extra: dict[str, Any], deadline: float
    ) -> ChatCompletion:
        """The request, retried after transient failures; no attempt outlives `deadline`."""
        retry = 0
        while True:
            left = deadline - time.monotonic()
            if left < MIN_ATTEMPT_SECONDS:
                spent = f"the model's time budget of {self.budget_seconds:g} s was spent"
                raise ModelError(spent, spent)
            timeout = min(self._timeout, left)
            try:
                # What `chat.completions.create` sends, posted without its walk of the whole
                # request against the SDK's TypedDicts (8 % of an incident's CPU with a 3,000-token
                # prompt, bench/pipeline.py): the body here is plain JSON already. Same retries,
                # auth, timeout and errors (the SDK's documented `post` for any endpoint).
                body = {
                    "model": self.model,
                    "messages": messages,
                    "temperature": 0.1,
                    "max_tokens": max_tokens,
                }
                return await self._client.post(
                    "/chat/completions",
                    cast_to=ChatCompletion,
                    body=body | extra,
                    options={"timeout": timeout},
                )
            except openai.OpenAIError as exc:
                retry += 1
                wait = retry_wait(exc, retry)
                if (
                    not transient(exc)
                    or retry > RETRIES
                    or time.monotonic() + wait + MIN_ATTEMPT_SECONDS > deadline
                ):
                    raise ModelError(
                        f"{exc.__class__.__name__}: {exc}", failure_reason(exc, timeout)
                    ) from exc
                log.warning("model request failed (%s); retrying in %.1fs", exc.__class__.__name__, wait)
                await asyncio.sleep(wait)

    async def conclude(
        self,
        messages: list[dict[str, Any]],
        offered: list[dict[str, Any]],
        deadline: float,
        keep_tools: bool = False,
    ) -> ModelReply:
        """The model's forced last answer: a send_diagnosis call, by whichever way this server
        honours (tried in FORCE_MODES order until one gives the call, then remembered). The reply
        may still hold no call when none works; the caller then falls back.

        `keep_tools`: the previous request offered `offered`. Then it is first asked to conclude
        with the same tools (tool_choice "required"): the server still holds that prompt, so
        only the question is read; every FORCE_MODE changes the tools, at the prompt's start,
        and a CPU server reads the whole prompt again (minutes). Given up for this process as
        soon as the model answers it with another tool."""
        if keep_tools and self.asked_concludes is not False:
            # A repair round already says what to send again; any other round is asked to conclude.
            question = [] if repairs_a_diagnosis(messages) else [CONCLUDE_NOW]
            asked = await self.complete([*messages, *question], offered, "required", deadline)
            if diagnosis_call(asked.message) is not None:
                self.asked_concludes = True
                return asked
            self.asked_concludes = False
            log.info("the model at %s called another tool when asked to conclude", self.host)
            reply = await self._conclude_forced(messages, offered, deadline)
            return reply.plus_tokens_of(asked)
        return await self._conclude_forced(messages, offered, deadline)

    async def _conclude_forced(
        self, messages: list[dict[str, Any]], offered: list[dict[str, Any]], deadline: float
    ) -> ModelReply:
        modes = (self.force_mode,) if self.force_mode else FORCE_MODES
        reply: ModelReply | None = None
        for mode in modes:
            try:
                reply = await self._forced(mode, messages, offered, deadline)
            except ModelError as exc:
                if self.force_mode is None and refused_request(exc):
                    log.info("the model's server refused forcing by %s: %s", mode, exc.reason)
                    continue
                raise
            if diagnosis_call(reply.message) is not None:
                if self.force_mode != mode:
                    log.info("the model at %s concludes when forced by %s", self.host, mode)
                self.force_mode = mode
                return reply
        if reply is None:
            raise ModelError("the server refused every way of forcing the conclusion", "it cannot be forced")
        return reply

    async def _forced(
        self, mode: ForceMode, messages: list[dict[str, Any]], offered: list[dict[str, Any]], deadline: float
    ) -> ModelReply:
        final = [tools.openai_tool(tools.SEND_DIAGNOSIS)]
        if mode == "required":
            return await self.complete(messages, final, "required", deadline)
        if mode == "named":
            return await self.complete(messages, offered, FORCE_DIAGNOSIS, deadline)
        reply = await self.complete(messages, [], deadline=deadline, response_format=send_diagnosis_schema())
        content = reply.message.get("content")
        if not content or diagnosis_call(reply.message) is not None:
            return reply  # nothing written, or the call came as a call after all
        # The schema's answer is the call's arguments: carried on as the call they stand for.
        call = {
            "id": "schema_call",
            "type": "function",
            "function": {"name": "send_diagnosis", "arguments": content},
        }
        reply.message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return reply

    async def close(self) -> None:
        await self._client.close()


FORCE_DIAGNOSIS = {"type": "function", "function": {"name": tools.SEND_DIAGNOSIS.name}}
ASK_TO_CONCLUDE = "Conclude now by calling send_diagnosis."
CONCLUDE_NOW = {"role": "user", "content": ASK_TO_CONCLUDE}


def repairs_a_diagnosis(messages: list[dict[str, Any]]) -> bool:
    """Whether the conversation ends with the answer to a send_diagnosis call (a repair request)."""
    last_call = next((m for m in reversed(messages) if m.get("role") == "assistant"), None)
    return messages[-1].get("role") == "tool" and last_call is not None and bool(diagnosis_call(last_call))


def diagnosis_call(message: dict[str, Any]) -> dict[str, Any] | None:
    """The send_diagnosis call of an assistant message, if it has one."""
    calls = message.get("tool_calls") or []
    return next((c for c in calls if c["function"]["name"] == tools.SEND_DIAGNOSIS.name), None)
