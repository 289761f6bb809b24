"""The bus: streams and KV declared from `contracts`, event publishing with dedup ids, KV
compare-and-set. Durable consumers (redelivery, dead letters) are a service router's:
`services.runtime.router`."""

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from faststream.nats import NatsBroker, NatsRouter
from faststream.nats.publisher.usecase import LogicPublisher
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue
from pydantic import BaseModel

from services.contracts import streams
from services.contracts.streams import BucketSpec, StreamSpec
from services.runtime import metrics

M = TypeVar("M", bound=BaseModel)
JSON_HEADERS = {"content-type": "application/json"}
KV_CAS_ATTEMPTS = 20
PUBLISH_TIMEOUT_SECONDS = 5.0


class PermanentError(Exception):
    """A message that can never succeed: dead-letter it at once instead of retrying."""


class CasConflict(RuntimeError):
    pass


# JetStream's answer to a publish whose expected last sequence is not the subject's.
WRONG_LAST_SEQUENCE = (10071, 10164)


async def publish_acked(
    nc: NatsClient, subject: str, body: bytes, headers: dict[str, str], ack_wait: float
) -> api.PubAck:
    """A JetStream publish and its ack, as nats-py's `JetStreamContext.publish` does it, with the
    ack read straight from its fields: the generic `PubAck.from_response` (dataclass introspection)
    and the header juggling around it cost tens of microseconds a publish, and the intake makes
    two per webhook."""
    try:
        msg = await nc.request(subject, body, timeout=ack_wait, headers=headers)
    except nats.errors.NoRespondersError:
        raise nats.js.errors.NoStreamResponseError from None
    answer = json.loads(msg.data)
    if "error" in answer:
        raise nats.js.errors.APIError.from_error(answer["error"])
    return api.PubAck(
        stream=answer["stream"],
        seq=answer["seq"],
        domain=answer.get("domain"),
        duplicate=answer.get("duplicate"),
    )


# What nats-py accepts as a key (nats/js/kv.py): anything else goes to its `create`, which says so.
PLAIN_KEY = re.compile(r"[-/_=.a-zA-Z0-9]+")


def is_plain_key(key: str) -> bool:
    return PLAIN_KEY.fullmatch(key) is not None and key[0] != "." and key[-1] != "."


class CountedKeyValue:
    """A bucket whose every operation is counted in `oncall_kv_operations_total{bucket,op}`: one
    count per call (a `create` nats-py retries over a deleted key is still one)."""

    def __init__(self, bucket: str, kv: KeyValue, nc: NatsClient | None = None):
        self.bucket = bucket
        self.kv = kv
        # The fast create only on a real connection (FastStream's test broker has none).
        self.nc = nc if isinstance(nc, NatsClient) else None
        self._counters: dict[str, Any] = {}

    def _count(self, op: str) -> None:
        counter = self._counters.get(op)
        if counter is None:  # looked up once per operation, not on every call
            counter = self._counters[op] = metrics.kv_operations.labels(bucket=self.bucket, op=op)
        counter.inc()

    async def get(self, key: str) -> KeyValue.Entry:
        self._count("get")
        return await self.kv.get(key)

    async def create(self, key: str, value: bytes) -> int:
        self._count("create")
        if self.nc is not None and self.nc.is_connected and is_plain_key(key):
            # The common case in one request: a key that never existed. A key that exists, or
            # was deleted (a tombstone), is nats-py's own `create`, which tells them apart.
            headers = {api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: "0"}
            subject = f"$KV.{self.bucket}.{key}"
            try:
                return (await publish_acked(self.nc, subject, value, headers, PUBLISH_TIMEOUT_SECONDS)).seq
            except nats.js.errors.APIError as exc:
                if exc.err_code not in WRONG_LAST_SEQUENCE:
                    raise
        return await self.kv.create(key, value)

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        self._count("update")
        return await self.kv.update(key, value, last=last)

    async def put(self, key: str, value: bytes) -> int:
        self._count("put")
        return await self.kv.put(key, value)

    async def delete(self, key: str) -> bool:
        self._count("delete")
        return await self.kv.delete(key)

    async def keys(self) -> list[str]:
        self._count("keys")
        return await self.kv.keys()


class Bus:
    def __init__(
        self,
        broker: NatsBroker,
        replicas: int = 1,
        ack_wait_seconds: float | None = None,
        direct_publish: bool = False,
    ):
        self.broker = broker
        # Events straight to JetStream instead of through FastStream's publisher: its publish
        # middlewares (metrics nobody reads; spans, only with tracing on) were a third of the
        # intake's CPU per webhook (bench/README.md). The host turns it on without tracing; tests
        # on FastStream's in-memory broker keep the publisher, which that broker patches.
        self.direct_publish = direct_publish
        self._js: JetStreamContext | None = None
        self._js_connection: object = None
        self.replicas = replicas
        self.ack_wait_seconds = ack_wait_seconds  # None: each consumer's own (ConsumerSpec)
        self._kv: dict[str, CountedKeyValue] = {}
        # subject -> the FastStream publisher an included router declared for it (ServiceRouter.publishes)
        self._publishers: dict[str, LogicPublisher] = {}

    @property
    def js(self) -> JetStreamContext:
        # One context per connection: building one per call was 3% of the intake's CPU.
        connection = self.broker.connection
        if self._js is None or self._js_connection is not connection:
            self._js, self._js_connection = connection.jetstream(), connection
        return self._js

    async def declare(self) -> None:
        """Create or update every stream and bucket; safe to run from every replica."""
        for spec in streams.ALL_STREAMS:
            await self._declare_stream(spec)
        for bucket in streams.ALL_BUCKETS:
            await self._declare_bucket(bucket)

    async def _declare_stream(self, spec: StreamSpec) -> None:
        config = api.StreamConfig(
            name=spec.name,
            description=spec.description,
            subjects=spec.subjects,
            max_age=spec.max_age_seconds,
            duplicate_window=spec.duplicate_window_seconds,
            num_replicas=self.replicas,
            storage=api.StorageType.FILE,
        )
        try:
            await self.js.add_stream(config)
        except nats.js.errors.BadRequestError:  # exists with another config: converge to ours
            await self.js.update_stream(config)

    async def _declare_bucket(self, spec: BucketSpec) -> None:
        try:
            kv = await self.js.key_value(spec.name)
        except nats.js.errors.BucketNotFoundError:
            kv = await self.js.create_key_value(
                api.KeyValueConfig(
                    bucket=spec.name,
                    description=spec.description,
                    history=spec.history,
                    ttl=spec.ttl_seconds or None,
                    replicas=self.replicas,
                )
            )
        self._kv[spec.name] = CountedKeyValue(spec.name, kv, self.broker.connection)

    async def kv(self, bucket: BucketSpec) -> CountedKeyValue:
        if bucket.name not in self._kv:
            self._kv[bucket.name] = CountedKeyValue(
                bucket.name, await self.js.key_value(bucket.name), self.broker.connection
            )
        return self._kv[bucket.name]

    def include(self, router: NatsRouter) -> None:
        """Include a service's router into the broker; the events it declared (`events`, subject ->
        publisher) are from then on published through its publishers."""
        self.broker.include_router(router)
        self._publishers.update(getattr(router, "events", {}))

    async def publish_event(self, subject: str, message: BaseModel, msg_id: str) -> api.PubAck:
        """Publish to JetStream and wait for the ack; `msg_id` makes a repeat a no-op (dedup window).
        Straight to JetStream with `direct_publish`; else through the publisher an included router
        declared for `subject`, or by the broker itself (operating commands, tests)."""
        body = message.model_dump_json(by_alias=True).encode()
        headers = {**JSON_HEADERS, "Nats-Msg-Id": msg_id}
        stream = stream_of(subject).name
        publisher = self._publishers.get(subject)
        if self.direct_publish:
            headers[api.Header.EXPECTED_STREAM.value] = stream
            ack: api.PubAck | None = await publish_acked(
                self.broker.connection, subject, body, headers, PUBLISH_TIMEOUT_SECONDS
            )
        elif publisher is not None:
            ack = await publisher.publish(
                body, headers=headers, stream=stream, timeout=PUBLISH_TIMEOUT_SECONDS
            )
        else:
            ack = await self.broker.publish(
                body, subject, headers=headers, timeout=PUBLISH_TIMEOUT_SECONDS, stream=stream
            )
        assert ack is not None
        return ack

    # --- KV ---------------------------------------------------------------------------

    async def kv_get(self, bucket: BucketSpec, key: str, model: type[M]) -> tuple[M | None, int]:
        """The value and its revision (0 when absent)."""
        kv = await self.kv(bucket)
        try:
            entry = await kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None, 0
        if entry.value is None:
            return None, 0
        return model.model_validate_json(entry.value), entry.revision or 0

    async def kv_update(
        self,
        bucket: BucketSpec,
        key: str,
        model: type[M],
        change: Callable[[M | None], M | None],
        likely_absent: bool = False,
    ) -> M | None:
        """Read-modify-write with compare-and-set on the revision, retried on conflict.

        `change` gets the current value (None when absent) and returns the new one, or None to
        leave it as it is. It may run several times, so it must be pure. `likely_absent`: try to
        create the key first, without reading it (one NATS round trip instead of two when the
        guess is right; when the key exists, the create fails and the read-modify-write follows).
        """
        kv = await self.kv(bucket)
        if likely_absent and (first := change(None)) is not None:
            try:
                await kv.create(key, first.model_dump_json().encode())
                return first
            except nats.js.errors.KeyWrongLastSequenceError:
                pass  # it exists: read it and change that
        for _ in range(KV_CAS_ATTEMPTS):
            current, revision = await self.kv_get(bucket, key, model)
            new = change(current)
            if new is None:
                return current
            payload = new.model_dump_json().encode()
            try:
                if revision == 0:
                    await kv.create(key, payload)
                else:
                    await kv.update(key, payload, last=revision)
                return new
            except nats.js.errors.KeyWrongLastSequenceError:
                await asyncio.sleep(0.005)
        raise CasConflict(f"{bucket.name}/{key}: too many concurrent writers")

    async def kv_text(self, bucket: BucketSpec, key: str) -> str | None:
        kv = await self.kv(bucket)
        try:
            entry = await kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        return entry.value.decode() if entry.value else None

    async def kv_put_text(self, bucket: BucketSpec, key: str, value: str) -> None:
        await (await self.kv(bucket)).put(key, value.encode())

    async def kv_delete(self, bucket: BucketSpec, key: str) -> None:
        await (await self.kv(bucket)).delete(key)

    async def claim(self, bucket: BucketSpec, key: str, value: bytes = b"1") -> bool:
        """Create `key` if absent: True for the first caller only (an idempotency claim)."""
        kv = await self.kv(bucket)
        try:
            await kv.create(key, value)
            return True
        except nats.js.errors.KeyWrongLastSequenceError:
            return False


def stream_of(subject: str) -> StreamSpec:
    for spec in streams.ALL_STREAMS:
        for pattern in spec.subjects:
            if subject.startswith(pattern.removesuffix(">")):
                return spec
    raise ValueError(f"no stream holds {subject}")
