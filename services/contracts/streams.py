"""JetStream streams and KV buckets of the product, with their limits."""

from dataclasses import dataclass, field
from typing import Final

from services.contracts import subjects


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: list[str]
    max_age_seconds: float
    # Window in which a repeated Nats-Msg-Id is dropped by the server.
    duplicate_window_seconds: float = 600.0
    description: str = ""


@dataclass(frozen=True)
class BucketSpec:
    name: str
    history: int = 5
    ttl_seconds: float = 0.0  # 0 = keep until deleted
    description: str = ""


ALERTS: Final = StreamSpec(
    name="ONCALL_ALERTS",
    subjects=["oncall.alerts.>"],
    max_age_seconds=7 * 24 * 3600,
    description="Alert groups from Alertmanager, as accepted by alert_ingest.",
)
EVENTS: Final = StreamSpec(
    name="ONCALL_EVENTS",
    subjects=[
        "oncall.incidents.>",
        "oncall.human.>",
        "oncall.notify.>",
        "oncall.tickets.>",
        "oncall.silences.>",
    ],
    max_age_seconds=7 * 24 * 3600,
    description="Diagnoses, human replies, texts for the human, ticket and silence requests, outcomes.",
)
DEAD_LETTERS: Final = StreamSpec(
    name="ONCALL_DLQ",
    subjects=[f"{subjects.DLQ_PREFIX}.>"],
    max_age_seconds=30 * 24 * 3600,
    description="Messages that could not be processed, with the reason in headers.",
)
ALL_STREAMS: Final = (ALERTS, EVENTS, DEAD_LETTERS)

CONVERSATIONS: Final = BucketSpec(
    name="oncall_conversations",
    history=5,
    description="One conversation per incident (key = incident id), updated with compare-and-set.",
)
GROUPS: Final = BucketSpec(
    name="oncall_groups",
    history=1,
    description="Alertmanager group (hash of groupKey) -> its current incident id.",
)
DELIVERIES: Final = BucketSpec(
    name="oncall_deliveries",
    history=1,
    ttl_seconds=14 * 24 * 3600,
    description="Idempotency of side effects: WhatsApp sends, ticket requests, message SIDs.",
)
MEMORY: Final = BucketSpec(
    name="oncall_memory",
    history=1,
    description="What the agent remembers across incidents: one record per problem signature "
    "(key sig-<hash>), one per flapping group (key flap-<group hash>); updated with compare-and-set.",
)
ALL_BUCKETS: Final = (CONVERSATIONS, GROUPS, DELIVERIES, MEMORY)


@dataclass(frozen=True)
class ConsumerSpec:
    durable: str
    stream: StreamSpec
    subjects: list[str] = field(default_factory=list)
    max_deliver: int = 5
    # Delays (seconds) before the 2nd, 3rd, ... delivery after a failure.
    backoff_seconds: tuple[float, ...] = (1.0, 5.0, 15.0, 60.0)
    # How long a message stays with a replica that stopped answering (crashed, partitioned)
    # before another replica gets it. A live replica keeps its message however long the work
    # takes: it reports progress every third of this (runtime/bus.py).
    ack_wait_seconds: float = 30.0
