"""Helpers shared by the ticketing tests: running the wired service on a real broker or with FastStream's
in-memory test broker, reading what was published, and the text of ADF documents."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import nats.errors
from fakes.jira_fake import FakeJira
from faststream.nats import NatsBroker, TestNatsBroker

from services.contracts import streams
from services.runtime.bus import Bus
from services.runtime.service import ServiceContext
from services.ticketing import app
from services.ticketing.settings import TicketingSettings


def texts(node: dict[str, Any]) -> list[str]:
    """The text nodes of an ADF document, in order."""
    own = [node["text"]] if node.get("type") == "text" else []
    return own + [t for child in node.get("content", []) for t in texts(child)]


async def published(bus: Bus, subject: str, field: str, value: str) -> list[dict[str, Any]]:
    """Every message on `subject` in the stream whose `field` is `value` (an ephemeral consumer)."""
    sub = await bus.js.pull_subscribe(subject, stream=streams.EVENTS.name)
    found: list[dict[str, Any]] = []
    try:
        while True:
            for msg in await sub.fetch(100, timeout=0.5):
                body = json.loads(msg.data)
                if body.get(field) == value:
                    found.append(body)
    except nats.errors.TimeoutError:
        return found
    finally:
        await sub.unsubscribe()


async def wait_until_acked(bus: Bus, durable: str, stream_seq: int) -> None:
    """Until the consumer has acked everything up to `stream_seq` in the stream."""
    async with asyncio.timeout(10):
        while True:
            info = await bus.js.consumer_info(streams.EVENTS.name, durable)
            if info.ack_floor is not None and (info.ack_floor.stream_seq or 0) >= stream_seq:
                return
            await asyncio.sleep(0.05)


def _settings(fake_jira: FakeJira, **env: str) -> TicketingSettings:
    return TicketingSettings.model_validate(
        {"JIRA_URL": fake_jira.url, "JIRA_EMAIL": fake_jira.email, "JIRA_API_TOKEN": fake_jira.api_token,
         "JIRA_PROJECT_KEY": "OPS", **env}
    )  # fmt: skip


@asynccontextmanager
async def ticketing_in_memory(bus: Bus, fake_jira: FakeJira, **env: str) -> AsyncIterator[NatsBroker]:
    """The service wired as `oncall run ticketing` does, its handlers run by FastStream's in-memory
    test broker: a message published to the broker yielded is handled before `publish` returns.
    KV and the events the service publishes are on `bus` (the real NATS)."""
    parts = app.wire(ServiceContext(settings=_settings(fake_jira, **env), bus=bus))
    assert parts.router is not None
    broker = NatsBroker()
    broker.include_router(parts.router)
    try:
        async with TestNatsBroker(broker) as in_memory:
            yield in_memory
    finally:
        for hook in parts.on_stop:
            await hook()


async def run_ticketing(
    nats_url: str,
    fake_jira: FakeJira,
    broker: NatsBroker,
    drive: Callable[[Bus], Awaitable[None]],
    **env: str,
) -> Bus:
    """Wire the service as `oncall run ticketing` does, run `drive` against it, then stop it."""
    bus = Bus(broker)
    parts = app.wire(ServiceContext(settings=_settings(fake_jira, **env), bus=bus))
    assert parts.router is not None
    bus.include(parts.router)
    await broker.connect()
    await bus.declare()
    await broker.start()
    try:
        await drive(bus)
    finally:
        for hook in parts.on_stop:
            await hook()
    return bus
