"""The diagnoser's metrics, in the process's one registry (`runtime.metrics.REGISTRY`)."""

from prometheus_client import Counter, Histogram

from services.runtime.metrics import REGISTRY

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
repeats = Counter(
    "oncall_repeat_incidents_total",
    "Diagnosed incidents whose problem signature was seen before (incident memory)",
    registry=REGISTRY,
)
feedback = Counter(
    "oncall_feedback_total", "Feedback on diagnoses from the on-call people", ["verdict"], registry=REGISTRY
)
flaps = Counter(
    "oncall_flapping_total",
    "Firings of flapping groups: announced (the one message) or counted silently",
    ["action"],
    registry=REGISTRY,
)
claims_unverified = Counter(
    "oncall_claims_unverified_total",
    "Claims of model diagnoses (file:line, quoted log lines) not found in the evidence",
    registry=REGISTRY,
)
slow_notices = Counter(
    "oncall_slow_notices_total",
    "'Still investigating' notices sent while a slow model worked",
    registry=REGISTRY,
)
model_tokens = Counter(
    "oncall_model_tokens_total",
    "Tokens the model's server counted, in (prompt) and out (completion)",
    ["direction"],
    registry=REGISTRY,
)
model_cost = Counter(
    "oncall_model_cost_usd_total",
    "What the model cost, at the configured prices (ONCALL_MODEL_PRICE_*); 0 without prices",
    registry=REGISTRY,
)
model_loops = Counter(
    "oncall_model_loops_total",
    "Loops in the model's tool calls: identical, only the window changed, alternating",
    ["kind"],
    registry=REGISTRY,
)
forced_conclusions = Counter(
    "oncall_model_forced_conclusions_total",
    "Investigations whose conclusion was forced, by reason: rounds, tokens, cost, loop, repair",
    ["reason"],
    registry=REGISTRY,
)
