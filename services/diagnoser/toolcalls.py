"""Calling the tools service over NATS request/reply; every failure becomes a ToolResult."""

import json
import logging
import time
from contextvars import ContextVar
from typing import Any

import nats.errors
from faststream.nats import NatsBroker
from pydantic import ValidationError

from services.contracts import subjects
from services.contracts.models import ToolRequest, ToolResult

log = logging.getLogger("oncall.diagnoser.tools")

# The monotonic time by which the current incident's investigation should be over (set by the
# handler for the task working on it; None: no retries).
INCIDENT_DEADLINE: ContextVar[float | None] = ContextVar("incident_deadline", default=None)


class ToolCaller:
    def __init__(self, broker: NatsBroker, timeout_seconds: float):
        self._broker = broker
        self._timeout = timeout_seconds

    async def call(self, tool: str, args: dict[str, Any], incident_id: str | None = None) -> ToolResult:
        """The tool's result. A call that timed out is asked once more when the incident's
        deadline (INCIDENT_DEADLINE) leaves room for it: the tools replica that took it may have
        died, and another one answers."""
        result = await self._once(tool, args, incident_id)
        deadline = INCIDENT_DEADLINE.get()
        timed_out = result.error is not None and result.error.kind == "timeout"
        if timed_out and deadline is not None and time.monotonic() + self._timeout <= deadline:
            log.warning("%s timed out; asking again", tool)
            result = await self._once(tool, args, incident_id)
        return result

    async def _once(self, tool: str, args: dict[str, Any], incident_id: str | None) -> ToolResult:
        request = ToolRequest(args=args, incident_id=incident_id)
        try:
            reply = await self._broker.request(
                request.to_bytes(), subjects.tool_subject(tool), timeout=self._timeout
            )
            return ToolResult.model_validate_json(reply.body)
        except nats.errors.NoRespondersError:
            return ToolResult.failure(tool, "unavailable", "no tools service is answering on the bus")
        except TimeoutError:
            return ToolResult.failure(tool, "timeout", f"no answer within {self._timeout:.0f}s")
        except ValidationError as exc:
            log.error("tools service sent an invalid reply for %s: %s", tool, exc)
            return ToolResult.failure(tool, "internal", "the tools service sent an invalid reply")


def call_key(tool: str, args: dict[str, Any]) -> str:
    """Identical calls (same tool, same arguments) share one result within an investigation."""
    return tool + json.dumps(args, sort_keys=True, default=str)
