"""Every KV call is counted in `oncall_kv_operations_total{bucket,op}` (what bench/kv_ops.py reads)."""

from collections.abc import AsyncIterator

import nats.js.errors
import pytest
import pytest_asyncio
from pydantic import BaseModel

from services.contracts import streams
from services.runtime import metrics
from services.runtime.broker import make_broker
from services.runtime.bus import Bus

OPS = ("get", "create", "update", "put", "delete", "keys")


class Note(BaseModel):
    text: str


@pytest_asyncio.fixture
async def bus(clean_bus: str) -> AsyncIterator[Bus]:
    broker = make_broker(clean_bus, "test-kv-operations")
    the_bus = Bus(broker)
    await broker.connect()
    await the_bus.declare()
    yield the_bus
    await broker.stop()


def counts(bucket: str) -> dict[str, float]:
    return {
        op: metrics.REGISTRY.get_sample_value("oncall_kv_operations_total", {"bucket": bucket, "op": op})
        or 0.0
        for op in OPS
    }


async def test_every_kv_call_is_counted_by_bucket_and_operation(bus: Bus) -> None:
    conversations, deliveries = streams.CONVERSATIONS, streams.DELIVERIES
    before = counts(conversations.name), counts(deliveries.name)

    await bus.kv_update(conversations, "kv-ops-1", Note, lambda _: Note(text="first"))  # get, create
    await bus.kv_update(conversations, "kv-ops-1", Note, lambda _: Note(text="second"))  # get, update
    await bus.kv_update(conversations, "kv-ops-1", Note, lambda _: None)  # get: nothing to write
    assert (await bus.kv_get(conversations, "kv-ops-1", Note))[0] == Note(text="second")  # get
    assert await (await bus.kv(conversations)).keys() == ["kv-ops-1"]  # keys
    assert await bus.claim(deliveries, "kv-ops-2")  # create
    await bus.kv_put_text(deliveries, "kv-ops-2", "done")  # put
    assert await bus.kv_text(deliveries, "kv-ops-2") == "done"  # get
    await bus.kv_delete(deliveries, "kv-ops-2")  # delete

    after = counts(conversations.name), counts(deliveries.name)
    changed = [
        {op: after[n][op] - before[n][op] for op in OPS if after[n][op] != before[n][op]} for n in (0, 1)
    ]
    assert changed == [
        {"get": 4, "create": 1, "update": 1, "keys": 1},
        {"create": 1, "put": 1, "get": 1, "delete": 1},
    ]


async def test_create_is_one_request_and_keeps_nats_py_semantics(bus: Bus) -> None:
    """A new key is created; an existing one is refused; a deleted one (a tombstone) is created
    again, as nats-py's own create does."""
    deliveries = await bus.kv(streams.DELIVERIES)
    assert deliveries.nc is not None  # the one-request path is the one under test

    first = await deliveries.create("kv-create-1", b"a")
    with pytest.raises(nats.js.errors.KeyWrongLastSequenceError):
        await deliveries.create("kv-create-1", b"b")
    assert (await deliveries.get("kv-create-1")).value == b"a"

    await deliveries.delete("kv-create-1")
    again = await deliveries.create("kv-create-1", b"c")
    assert again > first
    assert (await deliveries.get("kv-create-1")).value == b"c"
