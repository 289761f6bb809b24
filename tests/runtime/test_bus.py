"""The bus on a real nats-server: dedup, compare-and-set, redelivery, dead letters."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import nats
import pytest_asyncio
from faststream.nats import NatsBroker
from pydantic import BaseModel

from services.contracts import streams, subjects
from services.contracts.models import Conversation, NotifyText
from services.contracts.streams import ConsumerSpec
from services.runtime.broker import make_broker
from services.runtime.bus import Bus, PermanentError
from services.runtime.router import ServiceRouter


class Counter(BaseModel):
    value: int


@pytest_asyncio.fixture
async def bus(clean_bus: str) -> AsyncIterator[Bus]:
    broker = make_broker(clean_bus, "test-bus")
    the_bus = Bus(broker)
    await broker.connect()
    await the_bus.declare()
    yield the_bus
    await broker.stop()


async def test_same_msg_id_is_stored_once(bus: Bus) -> None:
    note = NotifyText(notification_id="n1", text="hello")
    first = await bus.publish_event(subjects.NOTIFY_TEXT, note, msg_id="same")
    second = await bus.publish_event(subjects.NOTIFY_TEXT, note, msg_id="same")
    assert not first.duplicate and second.duplicate and first.seq == second.seq


async def test_direct_publish_is_deduplicated_too(clean_bus: str) -> None:
    """The host's path (no FastStream publisher): the same dedup, the same stream."""
    broker = make_broker(clean_bus, "test-bus-direct")
    direct = Bus(broker, direct_publish=True)
    await broker.connect()
    await direct.declare()
    try:
        note = NotifyText(notification_id="n2", text="hello")
        first = await direct.publish_event(subjects.NOTIFY_TEXT, note, msg_id="same-direct")
        second = await direct.publish_event(subjects.NOTIFY_TEXT, note, msg_id="same-direct")
        assert not first.duplicate and second.duplicate and first.seq == second.seq
        assert first.stream == streams.EVENTS.name
    finally:
        await broker.stop()


async def test_compare_and_set_never_loses_an_update_between_two_writers(bus: Bus) -> None:
    key = f"counter-{uuid.uuid4().hex[:6]}"

    async def add_one() -> None:
        await bus.kv_update(
            streams.CONVERSATIONS, key, Counter, lambda c: Counter(value=(c.value if c else 0) + 1)
        )

    await asyncio.gather(*(add_one() for _ in range(2 * 10)))
    final, revision = await bus.kv_get(streams.CONVERSATIONS, key, Counter)
    assert final is not None and final.value == 20 and revision > 0


async def test_claim_is_won_once(bus: Bus) -> None:
    results = await asyncio.gather(*(bus.claim(streams.DELIVERIES, "claim-x") for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]


async def _dead_letters(url: str, count: int) -> list[nats.aio.msg.Msg]:
    nc = await nats.connect(url)
    sub = await nc.jetstream().pull_subscribe(subjects.dlq_subject(streams.EVENTS.name), durable=None)
    msgs = await sub.fetch(count, timeout=10)
    await nc.close()
    return msgs


async def _run_consumer(url: str, spec: ConsumerSpec, handle: object) -> NatsBroker:
    broker = make_broker(url, "test-consumer")
    router = ServiceRouter(Bus(broker))
    router.durable(spec)(handle)  # type: ignore[arg-type]
    broker.include_router(router)
    await broker.start()
    return broker


async def test_unparseable_message_goes_to_the_dead_letter_stream_with_a_reason(
    bus: Bus, clean_bus: str
) -> None:
    handled: list[NotifyText] = []

    async def handle(note: NotifyText) -> None:
        handled.append(note)

    spec = ConsumerSpec(durable="t-invalid", stream=streams.EVENTS, subjects=[subjects.NOTIFY_TEXT])
    broker = await _run_consumer(clean_bus, spec, handle)
    await bus.js.publish(subjects.NOTIFY_TEXT, b'{"text": "no id"}')
    await bus.js.publish(subjects.NOTIFY_TEXT, json.dumps({"notification_id": "ok", "text": "fine"}).encode())
    (dead,) = await _dead_letters(clean_bus, 1)
    assert "notification_id" in dead.headers["Oncall-Dlq-Reason"]
    assert dead.data == b'{"text": "no id"}'
    await asyncio.sleep(0.3)
    assert [n.notification_id for n in handled] == ["ok"]
    await broker.stop()


async def test_failures_are_redelivered_with_backoff_then_dead_lettered(bus: Bus, clean_bus: str) -> None:
    attempts: list[float] = []

    async def handle(note: NotifyText) -> None:
        attempts.append(asyncio.get_running_loop().time())
        raise RuntimeError("backend down")

    spec = ConsumerSpec(
        durable="t-retry",
        stream=streams.EVENTS,
        subjects=[subjects.NOTIFY_TEXT],
        max_deliver=3,
        backoff_seconds=(0.2, 0.4),
    )
    broker = await _run_consumer(clean_bus, spec, handle)
    await bus.publish_event(subjects.NOTIFY_TEXT, NotifyText(notification_id="r", text="x"), msg_id="r1")
    (dead,) = await _dead_letters(clean_bus, 1)
    assert "failed 3 times" in dead.headers["Oncall-Dlq-Reason"]
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.18 and attempts[2] - attempts[1] >= 0.38
    await broker.stop()


async def test_a_permanent_error_is_dead_lettered_without_retry(bus: Bus, clean_bus: str) -> None:
    attempts: list[int] = []

    async def handle(note: NotifyText) -> None:
        attempts.append(1)
        raise PermanentError("Jira rejected the request")

    spec = ConsumerSpec(durable="t-perm", stream=streams.EVENTS, subjects=[subjects.NOTIFY_TEXT])
    broker = await _run_consumer(clean_bus, spec, handle)
    await bus.publish_event(subjects.NOTIFY_TEXT, NotifyText(notification_id="p", text="x"), msg_id="p1")
    (dead,) = await _dead_letters(clean_bus, 1)
    assert "Jira rejected" in dead.headers["Oncall-Dlq-Reason"] and attempts == [1]
    await broker.stop()


async def test_conversation_model_round_trips_through_kv(bus: Bus) -> None:
    conversation = Conversation(incident_id="abc123", group_key="{}:{}", title="t")
    await bus.kv_update(streams.CONVERSATIONS, "abc123", Conversation, lambda _: conversation)
    loaded, _ = await bus.kv_get(streams.CONVERSATIONS, "abc123", Conversation)
    assert loaded == conversation
