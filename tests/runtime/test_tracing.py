"""Spans of the agent name the process that made them (`service.name`), so that a trace viewer
tells the diagnoser's spans from the notifier's."""

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util._once import Once

from services.runtime.broker import make_broker
from services.runtime.observability import configure_tracing


@pytest.fixture
def fresh_tracing() -> Iterator[None]:
    """OpenTelemetry lets a process set its tracer provider once; each test here sets its own (as
    OpenTelemetry's own test helpers do), and leaves none behind."""

    def reset() -> None:
        trace._TRACER_PROVIDER_SET_ONCE = Once()
        trace._TRACER_PROVIDER = None

    reset()
    yield
    reset()


async def test_spans_of_a_handled_message_carry_the_service_name(clean_bus: str, fresh_tracing: None) -> None:
    exporter = InMemorySpanExporter()
    provider = configure_tracing("oncall-diagnoser", exporter)
    assert provider is not None
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    broker = make_broker(clean_bus, "t-tracing", tracing=True)
    handled = asyncio.Event()

    @broker.subscriber("oncall.test.tracing")
    async def handle(body: dict[str, Any]) -> None:
        handled.set()

    await broker.start()
    try:
        await broker.publish({"hello": "spans"}, "oncall.test.tracing")
        await asyncio.wait_for(handled.wait(), timeout=5)
        for _ in range(50):  # the consumer's span ends once the handler has returned
            if any(s.kind == SpanKind.CONSUMER for s in exporter.get_finished_spans()):
                break
            await asyncio.sleep(0.05)
    finally:
        await broker.stop()

    spans = exporter.get_finished_spans()
    assert any(s.kind == SpanKind.CONSUMER for s in spans), [s.name for s in spans]
    assert {s.resource.attributes.get(SERVICE_NAME) for s in spans} == {"oncall-diagnoser"}


def test_no_tracing_without_an_exporter(monkeypatch: pytest.MonkeyPatch, fresh_tracing: None) -> None:
    """Spans nobody receives are not made: no provider, and the broker gets no tracing middleware."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert configure_tracing("oncall-alert-ingest") is None
    broker = make_broker("nats://127.0.0.1:1", "t-no-tracing")
    assert not any("Telemetry" in type(m).__name__ for m in broker.middlewares)
