"""NATS subjects of the bus: the one place where their names are spelled."""

from typing import Final

ALERTS_FIRING: Final = "oncall.alerts.firing"
ALERTS_RESOLVED: Final = "oncall.alerts.resolved"

INCIDENTS_DIAGNOSED: Final = "oncall.incidents.diagnosed"
INCIDENTS_RESOLVED: Final = "oncall.incidents.resolved"
HUMAN_REPLIED: Final = "oncall.human.replied"
NOTIFY_TEXT: Final = "oncall.notify.text"
TICKETS_REQUESTED: Final = "oncall.tickets.requested"
TICKETS_CREATED: Final = "oncall.tickets.created"
TICKETS_FAILED: Final = "oncall.tickets.failed"
SILENCES_REQUESTED: Final = "oncall.silences.requested"
SILENCES_APPLIED: Final = "oncall.silences.applied"

TOOLS_PREFIX: Final = "oncall.tools"
TOOLS_QUEUE: Final = "tools"

DLQ_PREFIX: Final = "oncall.dlq"

# Core NATS (not persisted): the console channel mirrors what it prints here so that
# `oncall reply` in another terminal can show the agent's answer.
CONSOLE_OUT: Final = "oncall.console.out"


def tool_subject(tool_name: str) -> str:
    return f"{TOOLS_PREFIX}.{tool_name}"


def dlq_subject(stream_name: str) -> str:
    return f"{DLQ_PREFIX}.{stream_name}"
