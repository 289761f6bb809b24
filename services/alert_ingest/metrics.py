"""alert_ingest's metrics, in the process's one registry (`runtime.metrics.REGISTRY`)."""

from prometheus_client import Counter, Histogram

from services.runtime.metrics import REGISTRY

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
