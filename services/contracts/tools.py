"""The one registry of tools: names, arguments, output caps and model-facing descriptions.

Both the OpenAI `tools` list and the NATS subjects are derived from it. Read-only tools may
be called while diagnosing an alert; write tools only in a human's turn (logs and code are
written by strangers, so nothing they say may trigger a write).
"""

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Final, Literal

from pydantic import BaseModel, Field

from services.contracts import subjects
from services.contracts.models import Priority, SendDiagnosisArgs


class FetchLogsArgs(BaseModel):
    service: str | None = Field(default=None, description="Service name from the alert labels")
    seconds: int = Field(default=300, ge=10, le=6 * 3600, description="How far back to look")
    limit: int = Field(default=2000, ge=1, le=10_000, description="At most this many lines")
    level: str | None = Field(default=None, description="Only this level and above, e.g. ERROR")
    starts_at: datetime | None = Field(
        default=None,
        description="The alert's startsAt: logs from `seconds` before it to `seconds` after it; "
        "templates first seen after it are marked new",
    )
    labels: dict[str, str] | None = Field(
        default=None, description="The alert's labels; namespace, cluster, pod, container narrow a Loki query"
    )


class ComputeErrorRateArgs(BaseModel):
    service: str | None = Field(default=None, description="Service name from the alert labels")


class FetchCodeArgs(BaseModel):
    file_path: str = Field(description="Path of the file in the repository, as in a stack frame")
    line: int | None = Field(default=None, ge=1, description="Line to centre the window on")
    context_lines: int = Field(default=15, ge=0, le=200, description="Lines shown either side")


class QueryPrometheusArgs(BaseModel):
    query: str = Field(min_length=1, max_length=4000, description="A PromQL expression")
    range_minutes: int = Field(
        default=0, ge=0, le=7 * 24 * 60, description="0: the value now; N: the values over the last N minutes"
    )
    step_seconds: int | None = Field(
        default=None, ge=1, description="Resolution of a range; default and minimum: about 60 points"
    )
    end: datetime | None = Field(
        default=None, description="Evaluate at (or end the range at) this time instead of now, ISO 8601"
    )


class RecentCommitsArgs(BaseModel):
    path: str | None = Field(
        default=None, description="File or directory, e.g. the file of a stack frame; default: everything"
    )
    since: datetime | None = Field(
        default=None, description="Only commits after this time; default: 7 days ago"
    )
    until: datetime | None = Field(default=None, description="Only commits before this time; default: now")
    limit: int = Field(default=10, ge=1, le=50, description="At most this many commits, newest first")


class CreateJiraTicketArgs(BaseModel):
    summary: str | None = Field(default=None, description="Ticket title; default: the incident title")
    assignee: str | None = Field(default=None, description="Person's name exactly as the human wrote it")
    priority: Priority | None = Field(default=None, description="Only if the human asked for one")
    new_ticket: bool = Field(default=False, description="Only if the human asked for a new/separate ticket")


class SilenceAlertArgs(BaseModel):
    duration_minutes: int = Field(default=120, ge=1, le=14 * 24 * 60, description="As the human said")


class NoArgs(BaseModel):
    pass


ToolKind = Literal["read", "final", "write"]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args_model: type[BaseModel]
    kind: ToolKind
    # Hard cap on what a tool result may put into the model's context.
    max_output_chars: int = 12_000

    @property
    def subject(self) -> str:
        return subjects.tool_subject(self.name)


FETCH_LOGS: Final = ToolSpec(
    name="fetch_logs",
    description=(
        "Recent log lines of a service from the load balancer, compressed: grouped into templates "
        "with counts, errors first, stack traces kept whole, secrets redacted."
    ),
    args_model=FetchLogsArgs,
    kind="read",
)
COMPUTE_ERROR_RATE: Final = ToolSpec(
    name="compute_error_rate",
    description=(
        "Current HTTP error rate (errors/requests over the last minute) of a service from Prometheus."
    ),
    args_model=ComputeErrorRateArgs,
    kind="read",
)
FETCH_CODE: Final = ToolSpec(
    name="fetch_code_from_github",
    description=(
        "Source code of a repository file around a line, with line numbers. Use the path from a stack frame."
    ),
    args_model=FetchCodeArgs,
    kind="read",
)
QUERY_PROMETHEUS: Final = ToolSpec(
    name="query_prometheus",
    description=(
        "Read-only PromQL query to Prometheus: the value now, or the values over the last minutes. "
        "Results are capped in series and points; aggregate with sum by (...) or topk."
    ),
    args_model=QueryPrometheusArgs,
    kind="read",
)
RECENT_COMMITS: Final = ToolSpec(
    name="recent_commits",
    description=(
        "Recent commits touching a file or directory, newest first: who changed it, when, and why "
        "(the commit title). Use the file of a stack frame to see what changed before the alert."
    ),
    args_model=RecentCommitsArgs,
    kind="read",
)
SEND_DIAGNOSIS: Final = ToolSpec(
    name="send_diagnosis",
    description="Finish the investigation: the structured root-cause diagnosis sent to the on-call people.",
    args_model=SendDiagnosisArgs,
    kind="final",
)
CREATE_JIRA_TICKET: Final = ToolSpec(
    name="create_jira_ticket",
    description=(
        "Create a Jira ticket for this incident. Only when the on-call person asked for it in their message."
    ),
    args_model=CreateJiraTicketArgs,
    kind="write",
)

SILENCE_ALERT: Final = ToolSpec(
    name="silence_alert",
    description="Silence this incident's alerts in Alertmanager. Only when the on-call person asked for it.",
    args_model=SilenceAlertArgs,
    kind="write",
)
UNSILENCE_ALERT: Final = ToolSpec(
    name="unsilence_alert",
    description="Remove the silence this agent created for the incident, when the on-call person asks.",
    args_model=NoArgs,
    kind="write",
)
ACKNOWLEDGE_INCIDENT: Final = ToolSpec(
    name="acknowledge_incident",
    description="Record that the on-call person has taken the incident (tells the other on-call people).",
    args_model=NoArgs,
    kind="write",
)
RESOLVE_INCIDENT: Final = ToolSpec(
    name="resolve_incident",
    description="Close the incident as resolved. Only when the on-call person says it is fixed or resolved.",
    args_model=NoArgs,
    kind="write",
)

READ_TOOLS: Final = (FETCH_LOGS, COMPUTE_ERROR_RATE, FETCH_CODE, QUERY_PROMETHEUS, RECENT_COMMITS)
WRITE_TOOLS: Final = (
    CREATE_JIRA_TICKET,
    SILENCE_ALERT,
    UNSILENCE_ALERT,
    ACKNOWLEDGE_INCIDENT,
    RESOLVE_INCIDENT,
)
ALL_TOOLS: Final = (*READ_TOOLS, SEND_DIAGNOSIS, *WRITE_TOOLS)
TOOLS_BY_NAME: Final = {spec.name: spec for spec in ALL_TOOLS}


def compact_schema(schema: Any) -> Any:
    """The same arguments in fewer tokens (a CPU model reads the tools at about 15-45 tokens a
    second, before every new prompt): no generated titles, and an optional field whose default is
    null is given as its type alone (leaving it out means null; the arguments' model still takes
    an explicit null)."""
    if isinstance(schema, list):
        return [compact_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    compacted: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "properties" and isinstance(value, dict):
            compacted[key] = {name: compact_schema(field) for name, field in value.items()}
        else:
            compacted[key] = compact_schema(value)
    options = compacted.get("anyOf")
    if isinstance(options, list) and compacted.get("default", ...) is None:
        kept = [option for option in options if option != {"type": "null"}]
        if len(kept) == 1 and len(options) == 2:
            del compacted["anyOf"], compacted["default"]
            compacted = {**kept[0], **compacted}
    return compacted


@cache  # pydantic builds a JSON schema in ~0.5 ms: once per process is enough
def _openai_tool(spec: ToolSpec) -> str:
    schema = compact_schema(spec.args_model.model_json_schema())
    entry = {
        "type": "function",
        "function": {"name": spec.name, "description": spec.description, "parameters": schema},
    }
    return json.dumps(entry)


def openai_tool(spec: ToolSpec) -> dict[str, Any]:
    """The chat-completions `tools[]` entry for a spec (a fresh copy: callers may change it)."""
    entry: dict[str, Any] = json.loads(_openai_tool(spec))
    return entry


def diagnosis_tools() -> list[dict[str, Any]]:
    """Tools offered while diagnosing an alert: read-only ones and the final answer, no writes."""
    return [openai_tool(s) for s in ALL_TOOLS if s.kind in ("read", "final")]


def human_turn_tools() -> list[dict[str, Any]]:
    """Tools offered in a human's turn: read-only ones and the write actions."""
    return [openai_tool(s) for s in ALL_TOOLS if s.kind in ("read", "write")]
