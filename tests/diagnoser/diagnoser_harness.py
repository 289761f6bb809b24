"""The diagnoser driven directly on a real NATS, with a stub tools service and the fake model."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import nats
import pytest_asyncio
from fakes import FakeOpenAI
from nats.aio.client import Client
from pydantic import SecretStr
from support.fixture_files import ALERTMANAGER_FIXTURES

from services.contracts import subjects
from services.contracts.models import AlertGroup, ToolRequest, ToolResult
from services.contracts.tool_results import ToolOutput
from services.diagnoser.handlers import Diagnoser
from services.diagnoser.model import ModelClient
from services.diagnoser.settings import DiagnoserSettings
from services.diagnoser.toolcalls import ToolCaller
from services.runtime.broker import make_broker
from services.runtime.bus import Bus

FIXTURES = ALERTMANAGER_FIXTURES

Canned = dict[str, Any] | ToolOutput | ToolResult
Answer = Canned | Callable[[dict[str, Any]], Canned]
# What a tools service with nothing to report answers (data for the tool's typed result).
NOTHING: dict[str, dict[str, Any]] = {
    "fetch_code_from_github": {"path": "", "ref": "stub", "total_lines": 0, "lines": []},
    "recent_commits": {"since": "2026-11-17T06:00:00Z", "source": "stub"},
    "query_prometheus": {"query": ""},
}


def typed(tool: str, data: dict[str, Any] | ToolOutput) -> ToolResult:
    """Canned data as the tools service sends it: the tool's typed result."""
    if not isinstance(data, dict):
        return ToolResult.success(tool, data)
    return ToolResult.model_validate({"tool": tool, "ok": True, "data": {"tool": tool, **data}})


@dataclass
class ToolCall:
    tool: str
    args: dict[str, Any]
    started: float
    finished: float = 0.0


@dataclass
class ToolsStub:
    """Answers `oncall.tools.*` like the tools service, from canned data, after `delay` seconds."""

    answers: dict[str, Answer] = field(default_factory=dict)
    delay: float = 0.0
    # Per tool, the delays of its next calls (then `delay`): a replica that hangs once.
    delays: dict[str, list[float]] = field(default_factory=dict)
    calls: list[ToolCall] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    _tasks: set["asyncio.Task[None]"] = field(default_factory=set)

    async def receive(self, msg: Any) -> None:
        # nats-py runs one callback at a time per subscription: answer each request in its own
        # task, as the real tools service (max_workers) does.
        task = asyncio.create_task(self.handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def handle(self, msg: Any) -> None:
        tool = msg.subject.rsplit(".", 1)[-1]
        request = ToolRequest.model_validate_json(msg.data)
        call = ToolCall(tool, request.args, time.monotonic())
        self.calls.append(call)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            pending = self.delays.get(tool)
            await asyncio.sleep(pending.pop(0) if pending else self.delay)
            answer = self.answers.get(tool, NOTHING.get(tool, {}))
            if callable(answer):
                answer = answer(request.args)
            result = answer if isinstance(answer, ToolResult) else typed(tool, answer)
        finally:
            self.in_flight -= 1
            call.finished = time.monotonic()
        await msg.respond(result.to_bytes())

    def names(self) -> list[str]:
        return [c.tool for c in self.calls]


@dataclass
class Harness:
    bus: Bus
    nc: Client
    tools: ToolsStub
    url: str

    def diagnoser(
        self,
        model: FakeOpenAI | None = None,
        max_rounds: int = 6,
        token_budget: int = 60_000,
        openai_timeout: float = 10.0,
        **settings: Any,
    ) -> Diagnoser:
        """`settings`: more of the diagnoser's, by variable name (ONCALL_SLOW_NOTICE_SECONDS=...)."""
        values = DiagnoserSettings(ONCALL_OPENAI_TIMEOUT_SECONDS=openai_timeout, **settings)
        client = None
        if model is not None:
            client = ModelClient(
                values.model_copy(
                    update={
                        "openai_api_key": SecretStr(model.api_key),
                        "openai_base_url": model.url + "/v1",
                        "openai_model": "gpt-test",
                    }
                )
            )
        return Diagnoser(
            bus=self.bus,
            caller=ToolCaller(self.bus.broker, 5.0),
            model=client,
            max_rounds=max_rounds,
            token_budget=token_budget,
            model_budget_seconds=values.model_budget_seconds,
            slow_notice_seconds=values.slow_notice_seconds if "ONCALL_SLOW_NOTICE_SECONDS" in settings else 0,
            cost_limit_usd=values.cost_limit_usd,
        )

    async def published(self, subject: str, wait: float = 0.5) -> list[dict[str, Any]]:
        """Everything stored on `subject` so far (JetStream), as JSON."""
        await asyncio.sleep(wait)
        js = self.nc.jetstream()
        sub = await js.subscribe(subject, ordered_consumer=True)
        found = []
        while True:
            try:
                msg = await sub.next_msg(timeout=0.3)
            except TimeoutError:
                break
            found.append(json.loads(msg.data))
        await sub.unsubscribe()
        return found


@pytest_asyncio.fixture
async def harness(clean_bus: str) -> AsyncIterator[Harness]:
    broker = make_broker(clean_bus, "test-diagnoser")
    bus = Bus(broker)
    await broker.connect()
    await bus.declare()
    stub = ToolsStub()
    nc = await nats.connect(clean_bus)
    await nc.subscribe(f"{subjects.TOOLS_PREFIX}.*", queue=subjects.TOOLS_QUEUE, cb=stub.receive)
    yield Harness(bus, nc, stub, clean_bus)
    await nc.close()
    await broker.stop()


def alert_group(name: str = "alertmanager_webhook_real.json", incident_id: str | None = None) -> AlertGroup:
    group = AlertGroup.model_validate_json((FIXTURES / name).read_bytes())
    if incident_id:
        group.incident_id = incident_id
    return group
