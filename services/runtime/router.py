"""A service's router: its durable consumers as typed handlers, the events it publishes, and the
one middleware that gives every durable consumer the bus's contract (README, "The bus"):

* the body is decoded into the handler's contract model (FastStream's decoder hook); a body that
  does not decode is dead-lettered at once: it would not decode on the next try either;
* the message is acked when the handler returns; after an error it is redelivered after the
  consumer's backoff (or later, when the failing source said when to come back: `retry_after`)
  up to `max_deliver` times, then dead-lettered; a `PermanentError` is dead-lettered at once;
* while the handler works, JetStream is told every third of the ack wait that it is in progress,
  so a long investigation is not handed to another replica meanwhile;
* every log line written meanwhile names the message's incident.

A dead letter goes to `oncall.dlq.<stream>` with its body unchanged and the headers
`Oncall-Dlq-Reason`, `Oncall-Original-Subject` and `Oncall-Deliveries`. A consumer of what a
person asked for declares `on_dead_letter`, which then gets the message and the reason in plain
words, so that the person is told that the request failed, and why (a dead letter is not the last
word anyone reads).

    router = ServiceRouter(ctx.bus, ctx.service)
    router.publishes(subjects.NOTIFY_TEXT, NotifyText)     # bus.publish_event(...) goes through it

    @router.durable(consumers.NOTIFIER_TEXT)
    async def on_text(note: NotifyText) -> None: ...

Handlers take only their model (no `NatsMessage`, `Context` or other injected parameter), so
FastStream's dependency injection has nothing to resolve per message beyond the model.
"""

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, get_type_hints

import nats.errors
from faststream import AckPolicy, BaseMiddleware
from faststream.message import StreamMessage
from faststream.nats import JStream, NatsRouter, PullSub
from faststream.nats.message import NatsMessage
from faststream.nats.publisher.usecase import LogicPublisher
from nats.js import api
from pydantic import BaseModel, ValidationError

from services.contracts import streams, subjects
from services.contracts.streams import ConsumerSpec, StreamSpec
from services.runtime import metrics
from services.runtime.bus import PUBLISH_TIMEOUT_SECONDS, Bus, PermanentError, stream_of
from services.runtime.heartbeat import beating
from services.runtime.observability import current_incident

log = logging.getLogger("oncall.bus")

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[M], Awaitable[None]]
# Called with a decoded message that was dead-lettered and the reason, for the people who asked.
DeadLetterHandler = Callable[[Any, str], Awaitable[None]]


class Undecodable(Exception):
    """The body is not the consumer's contract model."""


@dataclass(frozen=True)
class DurableConsumer:
    spec: ConsumerSpec
    ack_wait_seconds: float
    on_dead_letter: DeadLetterHandler | None = None


class ServiceRouter(NatsRouter):
    """The NatsRouter of one service; the host includes it into the process's broker."""

    def __init__(self, bus: Bus, service: str = "") -> None:
        self.bus = bus
        self.service = service  # names its publishers in the AsyncAPI document
        self.events: dict[str, LogicPublisher] = {}  # what it publishes: subject -> publisher
        self._durables: dict[object, DurableConsumer] = {}
        super().__init__(middlewares=[partial(DurableConsumerMiddleware, bus=bus, durables=self._durables)])

    def durable(
        self,
        spec: ConsumerSpec,
        *,
        max_workers: int = 1,
        on_dead_letter: DeadLetterHandler | None = None,
    ) -> Callable[[Handler[M]], Any]:
        """Consume `spec` durably with a handler taking the contract model; `max_workers`
        messages at once; `on_dead_letter(message, reason)` after a decoded message is
        dead-lettered. Returns FastStream's handler wrapper (`wait_call`, `mock` in tests)."""
        (subject,) = spec.subjects
        ack_wait = self.bus.ack_wait_seconds or spec.ack_wait_seconds

        def register(handler: Handler[M]) -> Any:
            subscriber = self.subscriber(
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
                ack_policy=AckPolicy.MANUAL,  # the middleware acks, naks and dead-letters
                max_workers=max_workers,
                title=spec.durable,
                decoder=contract_decoder(payload_model(handler)),
            )
            self._durables[subscriber] = DurableConsumer(spec, ack_wait, on_dead_letter)
            return subscriber(handler)

        return register

    def publishes(self, subject: str, model: type[BaseModel]) -> None:
        """Declare an event this service publishes: once the router is included (`Bus.include`),
        `Bus.publish_event` publishes it through this FastStream publisher; the AsyncAPI document
        lists it."""
        self.events[subject] = self.publisher(
            subject,
            stream=JStream(stream_of(subject).name, declare=False),
            timeout=PUBLISH_TIMEOUT_SECONDS,
            schema=model,
            title=f"{self.service or 'publish'}:{subject}",
        )


def payload_model(handler: Callable[..., Any]) -> type[BaseModel]:
    """The contract model a handler takes: its one parameter's annotation."""
    (name, *others) = inspect.signature(handler).parameters
    model = get_type_hints(handler).get(name)
    if others or not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{handler.__qualname__} must take one parameter annotated with a pydantic model")
    return model


def contract_decoder(model: type[M]) -> Callable[[StreamMessage[Any]], Awaitable[M]]:
    async def decode(msg: StreamMessage[Any]) -> M:
        try:
            return model.model_validate_json(msg.body)
        except ValidationError as exc:
            raise Undecodable(f"invalid {model.__name__}: {_first_error(exc)}") from exc

    return decode


class DurableConsumerMiddleware(BaseMiddleware):
    """The durable consumers' contract (module docstring), around each of their handlers; messages
    of other subscribers pass through untouched."""

    def __init__(
        self,
        msg: Any,
        /,
        *,
        context: Any,
        bus: Bus,
        durables: dict[object, DurableConsumer],
    ) -> None:
        super().__init__(msg, context=context)
        self._bus = bus
        self._durables = durables

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]) -> Any:
        durable = self._durables.get(self.context.get_local("handler_"))
        if durable is None:
            return await call_next(msg)
        assert isinstance(msg, NatsMessage)
        await self._consume(durable, call_next, msg)
        return None

    async def _consume(
        self, durable: DurableConsumer, call_next: Callable[[Any], Awaitable[Any]], msg: NatsMessage
    ) -> None:
        spec = durable.spec
        try:
            message = await msg.decode()  # cached: the handler gets this very object
        except Undecodable as exc:
            await self._dead_letter(msg, spec.stream, str(exc))
            await msg.ack()
            return
        token = current_incident.set(getattr(message, "incident_id", None))  # every log line names it
        try:
            try:
                async with working_on(msg, every=durable.ack_wait_seconds / 3):
                    await call_next(msg)
            except PermanentError as exc:
                await self._dead_letter(msg, spec.stream, f"permanent: {exc}")
                await msg.ack()
                await _tell(durable, message, str(exc))
            except Exception as exc:
                if await self._failed(spec, msg, exc):
                    await _tell(durable, message, f"{_plain(exc)} (gave up after {_deliveries(msg)} tries)")
            else:
                await msg.ack()
        finally:
            current_incident.reset(token)

    async def _failed(self, spec: ConsumerSpec, msg: NatsMessage, exc: Exception) -> bool:
        """Redeliver later, or dead-letter the message (True) after its last delivery."""
        metrics.handler_failures.labels(consumer=spec.durable).inc()
        deliveries = _deliveries(msg)
        if deliveries >= spec.max_deliver:
            await self._dead_letter(msg, spec.stream, f"failed {deliveries} times: {exc!r}")
            await msg.ack()
            return True
        delay = delay_before_redelivery(spec, deliveries)
        # A source that said when to come back (Jira's Retry-After on 429/503) is believed.
        delay = max(delay, getattr(exc, "retry_after", None) or 0.0)
        log.warning("%s failed (delivery %d), retry in %.0fs: %r", spec.durable, deliveries, delay, exc)
        await msg.nack(delay=delay)
        return False

    async def _dead_letter(self, msg: NatsMessage, stream: StreamSpec, reason: str) -> None:
        raw = msg.raw_message
        sequence = _stream_sequence(msg)
        metrics.dead_letters.labels(stream=stream.name, reason=reason.split(":")[0][:40]).inc()
        await self._bus.broker.publish(
            msg.body,
            subjects.dlq_subject(stream.name),
            headers={
                "Nats-Msg-Id": f"dlq-{stream.name}-{sequence}",
                "Oncall-Dlq-Reason": reason[:500],
                "Oncall-Original-Subject": raw.subject,
                "Oncall-Deliveries": str(_deliveries(msg)),
            },
            stream=streams.DEAD_LETTERS.name,
            timeout=PUBLISH_TIMEOUT_SECONDS,
        )
        log.error("dead-lettered %s #%s: %s", raw.subject, sequence, reason)


async def _tell(durable: DurableConsumer, message: Any, reason: str) -> None:
    if durable.on_dead_letter is None:
        return
    try:
        await durable.on_dead_letter(message, reason)
    except Exception:  # the dead letter is stored: an operator still finds it
        log.exception("%s: could not report a dead letter to the people who asked", durable.spec.durable)


def _plain(exc: Exception) -> str:
    """The failure in words for a person: the error's own message, else its kind."""
    return str(exc) or type(exc).__name__


def _deliveries(msg: NatsMessage) -> int:
    try:
        return msg.raw_message.metadata.num_delivered
    except nats.errors.NotJSMessageError:  # FastStream's in-memory test broker
        return 1


def _stream_sequence(msg: NatsMessage) -> int | str:
    try:
        return msg.raw_message.metadata.sequence.stream
    except nats.errors.NotJSMessageError:
        return msg.message_id


def delay_before_redelivery(spec: ConsumerSpec, deliveries_so_far: int) -> float:
    schedule = spec.backoff_seconds
    return schedule[min(deliveries_so_far, len(schedule)) - 1] if schedule else 0.0


@contextlib.asynccontextmanager
async def working_on(msg: NatsMessage, every: float) -> AsyncIterator[None]:
    """Tells JetStream every `every` seconds that the message is still being worked on, so that
    a long investigation is not handed to another replica meanwhile; a replica that dies stops
    telling, and its message goes to another one after a single ack wait."""

    async def report_progress() -> None:
        with contextlib.suppress(Exception):  # NATS reconnecting: the next beat may pass
            await msg.in_progress()

    async with beating(report_progress, every):
        yield


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "body"
    return f"{where}: {err.get('msg')}"
