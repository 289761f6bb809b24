"""Logs and traces of the agent itself.

Every log line carries the incident it is about (a context variable set where a message about
an incident is handled) and the trace id, which FastStream's OpenTelemetry middleware carries
from service to service in message headers. Logs are JSON (`ONCALL_LOG_FORMAT=json`, for
Kubernetes) or text. Tracing is on only when OTEL_EXPORTER_OTLP_ENDPOINT is set and the OTLP
exporter package is installed: spans nobody receives cost about a fifth of a service's CPU
(bench/profiles/README.md), so without an exporter no span is made, no trace context travels and
log lines carry no trace id.
"""

import json
import logging
import os
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from services.runtime.credentials import mask_credentials

current_incident: ContextVar[str | None] = ContextVar("current_incident", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(incident_suffix)s: %(message)s"


class ContextFilter(logging.Filter):
    """Adds `incident_id` and `trace_id` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        incident = current_incident.get()
        record.incident_id = incident
        record.incident_suffix = f" [#{incident}]" if incident else ""
        context = trace.get_current_span().get_span_context()
        record.trace_id = f"{context.trace_id:032x}" if context.is_valid else None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "incident_id": getattr(record, "incident_id", None),
            "trace_id": getattr(record, "trace_id", None),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps({k: v for k, v in line.items() if v is not None}, ensure_ascii=False)


class MaskingFormatter(logging.Formatter):
    """Masks URL credentials in every formatted line (messages, arguments and tracebacks alike):
    a NATS_URL with a password must not reach every pod's log while NATS is starting."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return mask_credentials(self.inner.format(record))


# HTTP client libraries that log every request at INFO (httpx: `HTTP Request: GET ... "HTTP/1.1
# 200 OK"`, one line per tool call and model round; Twilio's SDK: eight lines per WhatsApp
# message). Their requests are shown only at DEBUG; their warnings and errors always.
CHATTY_LOGGERS = ("httpx", "httpcore", "twilio.http_client")


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    inner = JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(MaskingFormatter(inner))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    debug = root.getEffectiveLevel() <= logging.DEBUG
    for name in CHATTY_LOGGERS:
        # NOTSET: inherit the root's level, so that DEBUG shows their requests again.
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.WARNING)


def otlp_exporter() -> SpanExporter | None:
    """The OTLP exporter OTEL_EXPORTER_OTLP_ENDPOINT asks for, or None (unset, or the package missing)."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        logging.getLogger("oncall").warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set, but opentelemetry-exporter-otlp-proto-http is missing: "
            "no tracing"
        )
        return None
    exporter: SpanExporter = OTLPSpanExporter()
    return exporter


def configure_tracing(service_name: str, exporter: SpanExporter | None = None) -> TracerProvider | None:
    """A tracer provider exporting to `exporter` (default: the OTLP one configured), every span
    naming the process (`service.name`, e.g. `oncall-diagnoser`); None, and no provider, when
    there is nowhere to send spans. The broker makes spans only when this returned a provider."""
    exporter = exporter or otlp_exporter()
    if exporter is None:
        return None
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider
