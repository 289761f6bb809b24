"""The tools service on a real nats-server, as `oncall run tools` runs it, and a caller for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from faststream.nats import NatsBroker

from services.contracts.models import ToolRequest, ToolResult
from services.contracts.tools import ToolSpec
from services.runtime.broker import make_broker
from services.runtime.bus import Bus
from services.runtime.service import ServiceContext
from services.runtime.settings import Settings
from services.tools.app import wire


@asynccontextmanager
async def tools_service(nats_url: str, name: str = "test-tools", **env: Any) -> AsyncIterator[NatsBroker]:
    """The tools service wired on its own broker with settings `env`; stopped after."""
    broker = make_broker(nats_url, name)
    parts = wire(ServiceContext(settings=Settings(**env), broker=broker, bus=Bus(broker)))
    await broker.start()
    try:
        yield broker
    finally:
        for hook in parts.on_stop:
            await hook()
        await broker.stop()


REQUEST_TIMEOUT_SECONDS = 5


async def call(broker: NatsBroker, spec: ToolSpec, args: dict[str, Any]) -> ToolResult:
    """One tool request as the diagnoser sends it."""
    request = ToolRequest(args=args, incident_id="a1b2c3").to_bytes()
    reply = await broker.request(request, spec.subject, timeout=REQUEST_TIMEOUT_SECONDS)
    return ToolResult.model_validate_json(reply.body)
