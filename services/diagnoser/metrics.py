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
