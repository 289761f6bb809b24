"""The bus: streams and KV declared from `contracts`, event publishing with dedup ids,
durable consumers with bounded redelivery and a dead-letter subject, KV compare-and-set."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import nats.js.errors
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue
from pydantic import BaseModel, ValidationError

from services.contracts import streams, subjects
from services.contracts.streams import BucketSpec, ConsumerSpec, StreamSpec
from services.runtime import metrics
from services.runtime.observability import current_incident

log = logging.getLogger("oncall.bus")

M = TypeVar("M", bound=BaseModel)
JSON_HEADERS = {"content-type": "application/json"}
KV_CAS_ATTEMPTS = 20


class PermanentError(Exception):
    """A message that can never succeed: dead-letter it at once instead of retrying."""


class CasConflict(RuntimeError):
    pass


class CountedKeyValue:
    """A bucket whose every operation is counted in `oncall_kv_operations_total{bucket,op}`: one
    count per call (a `create` nats-py retries over a deleted key is still one)."""

    def __init__(self, bucket: str, kv: KeyValue):
        self.bucket = bucket
        self.kv = kv

    def _count(self, op: str) -> None:
        metrics.kv_operations.labels(bucket=self.bucket, op=op).inc()

    async def get(self, key: str) -> KeyValue.Entry:
        self._count("get")
        return await self.kv.get(key)

    async def create(self, key: str, value: bytes) -> int:
        self._count("create")
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
    def __init__(self, broker: NatsBroker, replicas: int = 1, ack_wait_seconds: float | None = None):
        self.broker = broker
        self.replicas = replicas
        self.ack_wait_seconds = ack_wait_seconds  # None: each consumer's own (ConsumerSpec)
        self._kv: dict[str, CountedKeyValue] = {}

    @property
    def js(self) -> JetStreamContext:
        return self.broker.connection.jetstream()

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
        self._kv[spec.name] = CountedKeyValue(spec.name, kv)

    async def kv(self, bucket: BucketSpec) -> CountedKeyValue:
        if bucket.name not in self._kv:
            self._kv[bucket.name] = CountedKeyValue(bucket.name, await self.js.key_value(bucket.name))
        return self._kv[bucket.name]

    async def publish_event(self, subject: str, message: BaseModel, msg_id: str) -> api.PubAck:
        """Publish to JetStream and wait for the ack; `msg_id` makes a repeat a no-op (dedup window)."""
        body = message.model_dump_json(by_alias=True).encode()
        ack = await self.broker.publish(
            body,
            subject,
            headers={**JSON_HEADERS, "Nats-Msg-Id": msg_id},
            timeout=5.0,
            stream=stream_of(subject).name,
        )
        assert ack is not None
        return ack

    async def dead_letter(self, msg: NatsMessage, stream: StreamSpec, reason: str) -> None:
        meta = msg.raw_message.metadata
        metrics.dead_letters.labels(stream=stream.name, reason=reason.split(":")[0][:40]).inc()
        await self.broker.publish(
            msg.body,
            subjects.dlq_subject(stream.name),
            headers={
                "Nats-Msg-Id": f"dlq-{stream.name}-{meta.sequence.stream}",
                "Oncall-Dlq-Reason": reason[:500],
                "Oncall-Original-Subject": msg.raw_message.subject,
                "Oncall-Deliveries": str(meta.num_delivered),
            },
            stream=streams.DEAD_LETTERS.name,
            timeout=5.0,
        )
        log.error("dead-lettered %s #%s: %s", msg.raw_message.subject, meta.sequence.stream, reason)

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
        self, bucket: BucketSpec, key: str, model: type[M], change: Callable[[M | None], M | None]
    ) -> M | None:
        """Read-modify-write with compare-and-set on the revision, retried on conflict.

        `change` gets the current value (None when absent) and returns the new one, or None to
        leave it as it is. It may run several times, so it must be pure.
        """
        kv = await self.kv(bucket)
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


def delay_before_redelivery(spec: ConsumerSpec, deliveries_so_far: int) -> float:
    schedule = spec.backoff_seconds
    return schedule[min(deliveries_so_far, len(schedule)) - 1] if schedule else 0.0


# durable consumer name -> the contract model its messages carry (for the AsyncAPI document).
DURABLE_PAYLOADS: dict[str, type[BaseModel]] = {}


def subscribe_durable(
    broker: NatsBroker,
    bus: Bus,
    spec: ConsumerSpec,
    model: type[M],
    handle: Callable[[M], Awaitable[Any]],
    max_workers: int = 1,
) -> None:
    """Consume `spec.subjects` durably: ack after `handle` returns; on error redeliver after a
    backoff up to `max_deliver` times, then dead-letter; an unparseable body is dead-lettered
    at once (it would never parse on the next try either)."""
    (subject,) = spec.subjects
    DURABLE_PAYLOADS[spec.durable] = model
    ack_wait = bus.ack_wait_seconds or spec.ack_wait_seconds

    @broker.subscriber(
        subject,
        stream=JStream(spec.stream.name, declare=False),
        durable=spec.durable,
        pull_sub=PullSub(batch_size=max(1, max_workers), timeout=1.0),
        config=api.ConsumerConfig(
            durable_name=spec.durable,
            max_deliver=spec.max_deliver,
            ack_wait=ack_wait,
            max_ack_pending=1000,
        ),
        ack_policy=AckPolicy.MANUAL,
        max_workers=max_workers,
        title=spec.durable,
    )
    async def consume(msg: NatsMessage) -> None:
        try:
            message = model.model_validate_json(msg.body)
        except ValidationError as exc:
            await bus.dead_letter(msg, spec.stream, f"invalid {model.__name__}: {_first_error(exc)}")
            await msg.ack()
            return
        deliveries = msg.raw_message.metadata.num_delivered
        current_incident.set(getattr(message, "incident_id", None))  # every log line names it
        try:
            async with working_on(msg, every=ack_wait / 3):
                await handle(message)
        except PermanentError as exc:
            await bus.dead_letter(msg, spec.stream, f"permanent: {exc}")
            await msg.ack()
            return
        except Exception as exc:
            metrics.handler_failures.labels(consumer=spec.durable).inc()
            if deliveries >= spec.max_deliver:
                await bus.dead_letter(msg, spec.stream, f"failed {deliveries} times: {exc!r}")
                await msg.ack()
                return
            delay = delay_before_redelivery(spec, deliveries)
            # A source that said when to come back (Jira's Retry-After on 429/503) is believed.
            delay = max(delay, getattr(exc, "retry_after", None) or 0.0)
            log.warning("%s failed (delivery %d), retry in %.0fs: %r", spec.durable, deliveries, delay, exc)
            await msg.nack(delay=delay)
            return
        await msg.ack()


@contextlib.asynccontextmanager
async def working_on(msg: NatsMessage, every: float) -> AsyncIterator[None]:
    """Tells JetStream every `every` seconds that the message is still being worked on, so that
    a long investigation is not handed to another replica meanwhile; a replica that dies stops
    telling, and its message goes to another one after a single ack wait."""

    async def report_progress() -> None:
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(Exception):  # NATS reconnecting: the next beat may pass
                await msg.in_progress()

    beat = asyncio.create_task(report_progress())
    try:
        yield
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "body"
    return f"{where}: {err.get('msg')}"
