"""How the tools service answers: every request gets a `ToolResult` back, never an exception (a
responder that raises sends no reply, and the diagnoser would only see a timeout).

The tools' handlers are typed (`ToolRequest` in, `ToolResult` out) and only say what succeeding
is. One middleware of the tools' router does the rest, for every tool alike: it turns each failure
(a body that is not a `ToolRequest`, bad arguments, a backend error, the deadline, a crash) into the
result's structured error, times and counts every answer, and names the request's incident on the
log lines written meanwhile.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from faststream import BaseMiddleware
from faststream.message import StreamMessage
from faststream.nats import NatsRouter
from pydantic import BaseModel, ValidationError

from services.contracts import subjects
from services.contracts.models import ToolRequest, ToolResult
from services.contracts.tools import ToolSpec
from services.runtime.observability import current_incident
from services.tools import metrics
from services.tools.errors import BackendError

log = logging.getLogger("oncall.tools")

Runner = Callable[[Any], Awaitable[Any]]


class ToolsRouter(NatsRouter):
    """The tools service's router: one core-NATS responder per tool, in the shared queue group, so
    replicas split the requests and each serves up to `max_workers` at once."""

    def __init__(self, time_limit: float, max_workers: int) -> None:
        self._max_workers = max_workers
        self._tools: dict[object, str] = {}
        super().__init__(
            middlewares=[partial(ToolAnswerMiddleware, tools=self._tools, time_limit=time_limit)]
        )

    def serve(self, spec: ToolSpec, run: Runner) -> Any:
        subscriber = self.subscriber(
            spec.subject,
            queue=subjects.TOOLS_QUEUE,
            max_workers=self._max_workers,
            title=f"tools.{spec.name}",
            decoder=decode_request,
        )
        self._tools[subscriber] = spec.name

        async def respond(request: ToolRequest) -> ToolResult:
            return ToolResult.success(spec.name, await run(parse_args(spec, request.args)))

        respond.__name__ = respond.__qualname__ = f"answer_{spec.name}"
        return subscriber(respond)


class InvalidRequest(Exception):
    """The body is not a `ToolRequest`."""


async def decode_request(msg: StreamMessage[Any]) -> ToolRequest:
    try:
        return ToolRequest.model_validate_json(msg.body)
    except ValidationError as exc:
        raise InvalidRequest(f"the request is not a ToolRequest: {_describe(exc)}") from exc


class ToolAnswerMiddleware(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: Any, tools: dict[object, str], time_limit: float) -> None:
        super().__init__(msg, context=context)
        self._tools = tools
        self._time_limit = time_limit

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]) -> Any:
        tool = self._tools.get(self.context.get_local("handler_"))
        if tool is None:
            return await call_next(msg)
        started = time.perf_counter()
        result = await self._outcome(tool, call_next, msg)
        metrics.tool_seconds.labels(tool=tool).observe(time.perf_counter() - started)
        metrics.tool_calls.labels(tool=tool, outcome=result.error.kind if result.error else "ok").inc()
        return result

    async def _outcome(
        self, tool: str, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> ToolResult:
        try:
            request = await msg.decode()  # cached: the handler gets this very object
        except InvalidRequest as exc:
            return ToolResult.failure(tool, "bad_request", str(exc))
        assert isinstance(request, ToolRequest)
        # Core requests do not pass through the durable consumers that set the incident: every log
        # line of this request (the tool's own included) names the incident it is for.
        token = current_incident.set(request.incident_id)
        try:
            async with asyncio.timeout(self._time_limit):  # no extra task per call, unlike wait_for
                result: ToolResult = await call_next(msg)
            return result
        except BackendError as exc:
            log.warning("%s failed (%s): %s", tool, exc.kind, exc.message)
            return ToolResult.failure(tool, exc.kind, exc.message, exc.retry_after)
        except TimeoutError:
            log.warning("%s timed out after %ss", tool, self._time_limit)
            return ToolResult.failure(tool, "timeout", f"{tool} did not finish within {self._time_limit:g}s")
        except Exception as exc:
            log.exception("%s crashed", tool)
            return ToolResult.failure(tool, "internal", f"{type(exc).__name__}: {exc}")
        finally:
            current_incident.reset(token)


def parse_args(spec: ToolSpec, args: dict[str, Any]) -> BaseModel:
    """The spec's args model; unknown names are refused so a misspelt filter is not silently ignored."""
    fields = spec.args_model.model_fields
    known = set(fields) | {f.alias for f in fields.values() if f.alias}
    unknown = sorted(set(args) - known)
    if unknown:
        raise BackendError(
            "bad_request",
            f"unknown argument(s) {', '.join(unknown)} for {spec.name}; expected: {', '.join(fields)}",
        )
    try:
        return spec.args_model.model_validate(args)
    except ValidationError as exc:
        raise BackendError("bad_request", f"invalid arguments for {spec.name}: {_describe(exc)}") from exc


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    )
