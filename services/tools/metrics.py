"""The tools service's metrics, in the process's one registry (`runtime.metrics.REGISTRY`)."""

from prometheus_client import Counter, Histogram

from services.runtime.metrics import REGISTRY

tool_calls = Counter(
    "oncall_tool_calls_total",
    "Tool requests answered, by tool and outcome",
    ["tool", "outcome"],
    registry=REGISTRY,
)
tool_seconds = Histogram(
    "oncall_tool_seconds",
    "Time to answer a tool request (parse, run against the backend, build the result), by tool",
    ["tool"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
