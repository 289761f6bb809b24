"""The tools service on a real nats-server, as `oncall run tools` runs it, and a caller for it;
one tool's answers in FastStream's in-memory test broker, where NATS is not what is tested."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from faststream.nats import NatsBroker, TestNatsBroker

from services.contracts.models import ToolRequest, ToolResult
from services.contracts.tools import ToolSpec
from services.runtime.broker import make_broker
from services.runtime.bus import Bus
from services.runtime.service import ServiceContext
from services.tools.answers import Runner, ToolsRouter
from services.tools.app import wire
from services.tools.settings import ToolsSettings


@asynccontextmanager
async def tools_service(nats_url: str, name: str = "test-tools", **env: Any) -> AsyncIterator[NatsBroker]:
    """The tools service wired on its own broker with settings `env`; stopped after."""
    broker = make_broker(nats_url, name)
    parts = wire(ServiceContext(settings=ToolsSettings(**env), bus=Bus(broker)))
    assert parts.router is not None
    broker.include_router(parts.router)
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


async def answer(spec: ToolSpec, run: Runner, body: bytes, time_limit: float) -> ToolResult:
    """The answer to one request (`body`) of a tools router serving `spec` with `run`."""
    router = ToolsRouter(time_limit=time_limit, max_workers=1)
    router.serve(spec, run)
    broker = NatsBroker()
    broker.include_router(router)
    async with TestNatsBroker(broker) as in_memory:
        reply = await in_memory.request(body, spec.subject, timeout=time_limit + 5)
    return ToolResult.model_validate_json(reply.body)
