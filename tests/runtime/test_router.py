"""A service router's durable consumers with FastStream's in-memory test broker: the broker is not
what is tested here (redelivery with backoff and dead letters on a real JetStream: test_bus.py)."""

from dataclasses import dataclass, field

import pytest
from faststream.nats import JStream, NatsBroker, NatsMessage, TestNatsBroker
from pydantic import BaseModel

from services.contracts import streams, subjects
from services.contracts.models import NotifyText
from services.contracts.streams import ConsumerSpec
from services.runtime.bus import Bus, PermanentError
from services.runtime.observability import current_incident
from services.runtime.router import ServiceRouter

DLQ = subjects.dlq_subject(streams.EVENTS.name)


@dataclass
class Service:
    """A router with one durable consumer of NotifyText, and what reached its handler and the DLQ."""

    broker: NatsBroker
    handled: list[tuple[NotifyText, str | None]] = field(default_factory=list)
    dead: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    told: list[tuple[NotifyText, str]] = field(default_factory=list)  # what on_dead_letter got


def service(max_deliver: int = 5, fail: Exception | None = None) -> Service:
    broker = NatsBroker()
    router = ServiceRouter(Bus(broker), "test")
    spec = ConsumerSpec(
        durable="t-router", stream=streams.EVENTS, subjects=[subjects.NOTIFY_TEXT], max_deliver=max_deliver
    )
    svc = Service(broker)

    async def on_dead_letter(note: NotifyText, reason: str) -> None:
        svc.told.append((note, reason))

    @router.durable(spec, on_dead_letter=on_dead_letter)
    async def on_text(note: NotifyText) -> None:
        svc.handled.append((note, current_incident.get()))
        if fail is not None:
            raise fail

    broker.include_router(router)

    @broker.subscriber(DLQ, stream=JStream(streams.DEAD_LETTERS.name, declare=False))
    async def dead_letter(msg: NatsMessage) -> None:
        svc.dead.append((msg.body, msg.headers))

    return svc


async def publish(svc: Service, body: bytes) -> None:
    async with TestNatsBroker(svc.broker) as test_broker:
        await test_broker.publish(body, subjects.NOTIFY_TEXT)


async def test_the_handler_gets_its_model_and_its_logs_name_the_incident() -> None:
    svc = service()
    note = NotifyText(notification_id="n1", incident_id="a1b2c3", text="hello")
    await publish(svc, note.to_bytes())
    assert svc.handled == [(note, "a1b2c3")] and svc.dead == []
    assert current_incident.get() is None  # named for that message only


async def test_a_body_that_is_not_the_model_is_dead_lettered_at_once_with_the_reason() -> None:
    svc = service()
    await publish(svc, b'{"text": "no id"}')
    assert svc.handled == []
    ((body, headers),) = svc.dead
    assert body == b'{"text": "no id"}'
    assert headers["Oncall-Dlq-Reason"] == "invalid NotifyText: notification_id: Field required"
    assert headers["Oncall-Original-Subject"] == subjects.NOTIFY_TEXT
    assert headers["Oncall-Deliveries"] == "1"
    assert headers["Nats-Msg-Id"].startswith(f"dlq-{streams.EVENTS.name}-")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (PermanentError("Jira rejected the request"), "permanent: Jira rejected the request"),
        (RuntimeError("backend down"), "failed 1 times: RuntimeError('backend down')"),
    ],
)
async def test_a_failure_is_dead_lettered_with_its_reason(error: Exception, reason: str) -> None:
    """A permanent error at once; any other error on the last delivery (max_deliver=1 here)."""
    svc = service(max_deliver=1, fail=error)
    await publish(svc, NotifyText(notification_id="n2", text="x").to_bytes())
    assert len(svc.handled) == 1
    ((_, headers),) = svc.dead
    assert headers["Oncall-Dlq-Reason"] == reason


@pytest.mark.parametrize(
    ("error", "told"),
    [
        (PermanentError("Jira rejected the request"), "Jira rejected the request"),
        (RuntimeError("backend down"), "backend down (gave up after 1 tries)"),
    ],
)
async def test_the_people_who_asked_are_told_of_a_dead_letter_in_plain_words(
    error: Exception, told: str
) -> None:
    svc = service(max_deliver=1, fail=error)
    note = NotifyText(notification_id="n3", text="x")
    await publish(svc, note.to_bytes())
    assert svc.told == [(note, told)]


async def test_nobody_is_told_while_a_failure_will_be_retried() -> None:
    svc = service(max_deliver=2, fail=RuntimeError("backend down"))
    await publish(svc, NotifyText(notification_id="n4", text="x").to_bytes())
    assert svc.told == [] and svc.dead == []


def test_a_handler_takes_one_contract_model() -> None:
    router = ServiceRouter(Bus(NatsBroker()))
    spec = ConsumerSpec(durable="t-untyped", stream=streams.EVENTS, subjects=[subjects.NOTIFY_TEXT])

    async def untyped(note: dict[str, str]) -> None: ...

    async def two(note: NotifyText, other: BaseModel) -> None: ...

    for handler in (untyped, two):
        with pytest.raises(TypeError, match="one parameter annotated with a pydantic model"):
            router.durable(spec)(handler)  # type: ignore[arg-type]
