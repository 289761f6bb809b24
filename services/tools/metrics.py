"""The tools service's metrics, in the process's one registry (`runtime.metrics.REGISTRY`)."""

from prometheus_client import Counter

from services.runtime.metrics import REGISTRY

tool_calls = Counter(
    "oncall_tool_calls_total",
    "Tool requests answered, by tool and outcome",
    ["tool", "outcome"],
    registry=REGISTRY,
)
