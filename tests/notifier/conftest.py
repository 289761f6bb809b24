"""Fixtures of the notifier tests: the bus on the session's nats-server (tests/conftest.py), the
Twilio fake."""

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from fakes import FakeTwilio
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from services.contracts import streams
from services.notifier.settings import NotifierSettings
from services.runtime.broker import make_broker
from services.runtime.bus import Bus

ON_CALL = ("+15551230001", "+15551230002")
TWILIO_NUMBER = "+14155238886"
PUBLIC_BASE_URL = "https://oncall.example.com"


async def connected_bus(url: str) -> Bus:
    broker = make_broker(url, "test-notifier")
    bus = Bus(broker)
    await broker.connect()
    await bus.declare()
    return bus


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    bus = await connected_bus(nats_url)
    yield bus
    await bus.broker.stop()


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


MakeSettings = Callable[..., NotifierSettings]


@pytest.fixture
def make_settings(twilio: FakeTwilio) -> MakeSettings:
    """Settings of a notifier talking to the Twilio fake; keyword arguments override by
    variable name (None unsets)."""

    def build(**overrides: object) -> NotifierSettings:
        values: dict[str, object] = {
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": twilio.auth_token,
            "TWILIO_WHATSAPP_NUMBER": f"whatsapp:{TWILIO_NUMBER}",
            "TWILIO_API_BASE_URL": twilio.url,
            "USER_WHATSAPP_NUMBER": ",".join(ON_CALL),
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            **overrides,
        }
        return NotifierSettings.model_validate(values)

    return build


class Tap:
    """What is published on a JetStream subject from now on, read with an ephemeral consumer."""

    def __init__(self, sub: JetStreamContext.PullSubscription):
        self._sub = sub

    async def read(self, wait: float = 0.5) -> list[Msg]:
        """Everything published so far; waits `wait` seconds for the first message."""
        found: list[Msg] = []
        while True:
            try:
                batch = await self._sub.fetch(100, timeout=wait)
            except TimeoutError:  # nats-py raises its own subclass, or asyncio's when the deadline passed
                return found
            for msg in batch:
                await msg.ack()
            found += batch
            wait = 0.2  # the rest, if any, is already there


OpenTap = Callable[[str], Awaitable[Tap]]


@pytest.fixture
async def tap_events(bus: Bus) -> AsyncIterator[OpenTap]:
    opened: list[JetStreamContext.PullSubscription] = []

    async def open_tap(subject: str) -> Tap:
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.NEW, inactive_threshold=30.0)
        sub = await bus.js.pull_subscribe(subject, stream=streams.EVENTS.name, config=config)
        opened.append(sub)
        return Tap(sub)

    yield open_tap
    for sub in opened:
        await sub.unsubscribe()
