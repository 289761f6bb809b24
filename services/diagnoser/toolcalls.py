"""Calling the tools service over NATS request/reply; every failure becomes a ToolResult."""

import json
import logging
from typing import Any

import nats.errors
from faststream.nats import NatsBroker
from pydantic import ValidationError

from services.contracts import subjects
from services.contracts.models import ToolRequest, ToolResult

log = logging.getLogger("oncall.diagnoser.tools")


class ToolCaller:
    def __init__(self, broker: NatsBroker, timeout_seconds: float):
        self._broker = broker
        self._timeout = timeout_seconds

    async def call(self, tool: str, args: dict[str, Any], incident_id: str | None = None) -> ToolResult:
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
