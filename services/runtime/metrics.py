"""Domain metrics shared by all services (one registry per process)."""

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

dead_letters = Counter(
    "oncall_dead_letters_total",
    "Messages sent to a dead-letter subject",
    ["stream", "reason"],
    registry=REGISTRY,
)
handler_failures = Counter(
    "oncall_handler_failures_total",
    "Handler errors that led to a redelivery",
    ["consumer"],
    registry=REGISTRY,
)
webhooks = Counter(
    "oncall_ingest_webhooks_total", "Alertmanager webhooks by outcome", ["outcome"], registry=REGISTRY
)
ingest_alerts = Counter(
    "oncall_ingest_alerts_total",
    "Alerts in accepted webhooks, by alert status",
    ["status"],
    registry=REGISTRY,
)
ingest_rejections = Counter(
    "oncall_ingest_rejected_total",
    "Refused webhooks by HTTP status and reason",
    ["status", "reason"],
    registry=REGISTRY,
)
ingest_publish_seconds = Histogram(
    "oncall_ingest_publish_seconds",
    "Time to a JetStream ack for an accepted webhook",
    registry=REGISTRY,
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)
tool_calls = Counter(
    "oncall_tool_calls_total",
    "Tool requests answered, by tool and outcome",
    ["tool", "outcome"],
    registry=REGISTRY,
)
diagnoses = Counter("oncall_diagnoses_total", "Diagnoses published, by method", ["method"], registry=REGISTRY)
model_calls = Histogram(
    "oncall_model_calls_per_diagnosis",
    "Model calls an investigation needed",
    registry=REGISTRY,
    buckets=(1, 2, 3, 4, 6, 8, 12, 20),
)
llm_failures = Counter(
    "oncall_llm_failures_total",
    "Model calls that failed and fell back to rules",
    ["reason"],
    registry=REGISTRY,
)
whatsapp_sends = Counter(
    "oncall_whatsapp_messages_total",
    "Outgoing messages by channel and outcome",
    ["channel", "outcome"],
    registry=REGISTRY,
)
inbound_replies = Counter(
    "oncall_inbound_replies_total", "Inbound WhatsApp webhooks by outcome", ["outcome"], registry=REGISTRY
)
tickets = Counter("oncall_tickets_total", "Ticket requests by outcome", ["outcome"], registry=REGISTRY)
kv_operations = Counter(
    "oncall_kv_operations_total",
    "JetStream KV operations by bucket and operation (get, create, update, put, delete, keys)",
    ["bucket", "op"],
    registry=REGISTRY,
)
