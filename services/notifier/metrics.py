"""The notifier's metrics, in the process's one registry (`runtime.metrics.REGISTRY`)."""

from prometheus_client import Counter

from services.runtime.metrics import REGISTRY

whatsapp_sends = Counter(
    "oncall_whatsapp_messages_total",
    "Outgoing messages by channel and outcome",
    ["channel", "outcome"],
    registry=REGISTRY,
)
inbound_replies = Counter(
    "oncall_inbound_replies_total", "Inbound WhatsApp webhooks by outcome", ["outcome"], registry=REGISTRY
)
