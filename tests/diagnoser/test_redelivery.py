"""At-least-once delivery never means a second diagnosis message."""

import asyncio

from diagnoser_harness import Harness, alert_group

from services.contracts import streams, subjects
from services.contracts.models import AlertGroup
from services.contracts.streams import ConsumerSpec
from services.runtime.broker import make_broker
from services.runtime.bus import Bus
from services.runtime.router import ServiceRouter


async def test_a_handler_that_dies_after_publishing_is_redelivered_and_publishes_nothing_new(
    harness: Harness,
) -> None:
    diagnoser = harness.diagnoser()
    deliveries: list[str] = []

    async def crash_after_publish_once(group: AlertGroup) -> None:
        await diagnoser.on_alert_firing(group)
        deliveries.append(group.incident_id or "")
        if len(deliveries) == 1:
            raise RuntimeError("killed after the diagnosis was published, before the ack")

    spec = ConsumerSpec(
        durable="t-redeliver",
        stream=streams.ALERTS,
        subjects=[subjects.ALERTS_FIRING],
        backoff_seconds=(0.2,),
    )
    broker = make_broker(harness.url, "t-redeliver")
    router = ServiceRouter(Bus(broker))
    router.durable(spec)(crash_after_publish_once)
    broker.include_router(router)
    await broker.start()
    try:
        group = alert_group(incident_id="redo01")
        await harness.bus.publish_event(subjects.ALERTS_FIRING, group, msg_id="redo01")
        for _ in range(50):
            if len(deliveries) >= 2:
                break
            await asyncio.sleep(0.1)
    finally:
        await broker.stop()
    assert deliveries == ["redo01", "redo01"]
    assert len(await harness.published(subjects.INCIDENTS_DIAGNOSED)) == 1
