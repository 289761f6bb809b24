"""The process's one metrics registry, and the metrics of what services share (the bus and its
durable consumers). Each service declares its own metrics in `services/<name>/metrics.py`, in
this registry."""

from prometheus_client import CollectorRegistry, Counter

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
kv_operations = Counter(
    "oncall_kv_operations_total",
    "JetStream KV operations by bucket and operation (get, create, update, put, delete, keys)",
    ["bucket", "op"],
    registry=REGISTRY,
)
