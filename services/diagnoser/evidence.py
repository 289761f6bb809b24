"""Evidence first: logs and error rate in parallel, then the code at the top stack frame."""

import asyncio
import json
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from services.contracts import tools
from services.contracts.models import AlertGroup, ToolResult
from services.contracts.tool_results import (
    CodeWindow,
    CommitsResult,
    CommitSummary,
    ErrorRateResult,
    LogsResult,
    StackFrame,
)
from services.diagnoser.toolcalls import ToolCaller


@dataclass
class EvidenceItem:
    tool: str
    args: dict[str, Any]
    result: ToolResult


@dataclass
class Evidence:
    logs: EvidenceItem
    error_rate: EvidenceItem
    code: EvidenceItem | None
    commits: EvidenceItem | None = None

    @property
    def items(self) -> list[EvidenceItem]:
        return [item for item in (self.logs, self.error_rate, self.code, self.commits) if item is not None]

    @property
    def log_result(self) -> LogsResult | None:
        return self.logs.result.output(LogsResult)

    @property
    def code_window(self) -> CodeWindow | None:
        return self.code.result.output(CodeWindow) if self.code is not None else None


def top_frame(logs: ToolResult) -> StackFrame | None:
    """The innermost application frame of the most frequent stack trace, as found by fetch_logs."""
    result = logs.output(LogsResult)
    frame = result.top_frame if result is not None else None
    return frame if frame is not None and frame.file else None


async def gather_evidence(caller: ToolCaller, group: AlertGroup, incident_id: str) -> Evidence:
    """Logs (around the alert's start, narrowed by its labels) and the error rate in parallel;
    then, for the top stack frame, its code and the recent commits touching it, in parallel."""
    service = group.service
    logs_args: dict[str, Any] = {"service": service, "labels": group.common_labels}
    started = group.earliest_start()
    if started is not None:
        logs_args["starts_at"] = started.isoformat()
    rate_args: dict[str, Any] = {"service": service}
    rate_call = asyncio.ensure_future(caller.call(tools.COMPUTE_ERROR_RATE.name, rate_args, incident_id))
    logs = await caller.call(tools.FETCH_LOGS.name, logs_args, incident_id)
    # The code and its history depend only on the logs: ask for them while the error rate is on its way.
    frame_calls: list[Awaitable[ToolResult]] = []
    frame = top_frame(logs)
    if frame is not None:
        code_args: dict[str, Any] = {"file_path": frame.file, "line": frame.line}
        commits_args: dict[str, Any] = {"path": frame.file, "limit": 5}
        frame_calls = [
            caller.call(tools.FETCH_CODE.name, code_args, incident_id),
            caller.call(tools.RECENT_COMMITS.name, commits_args, incident_id),
        ]
    rate, *frame_results = await asyncio.gather(rate_call, *frame_calls)
    evidence = Evidence(
        logs=EvidenceItem(tools.FETCH_LOGS.name, logs_args, logs),
        error_rate=EvidenceItem(tools.COMPUTE_ERROR_RATE.name, rate_args, rate),
        code=None,
    )
    if frame is not None:
        code, commits = frame_results
        evidence.code = EvidenceItem(tools.FETCH_CODE.name, code_args, code)
        evidence.commits = EvidenceItem(tools.RECENT_COMMITS.name, commits_args, commits)
    return evidence


def latest_commit(evidence: Evidence) -> CommitSummary | None:
    """The newest commit that touched the failing file, when the history could be read."""
    history = evidence.commits.result.output(CommitsResult) if evidence.commits is not None else None
    return history.commits[0] if history is not None and history.commits else None


def result_for_model(result: ToolResult, max_chars: int) -> str:
    """A tool result as the model reads it (its compact rendering, or the error), capped in size."""
    text = json.dumps(result.for_model(), default=str, ensure_ascii=False)
    if len(text) > max_chars:
        text = text[:max_chars] + f" …[cut: {len(text) - max_chars} more characters]"
    return text


def error_rate_of(evidence: Evidence) -> float | None:
    rate = evidence.error_rate.result.output(ErrorRateResult)
    return rate.error_rate if rate is not None else None


def summarize(evidence: Evidence) -> str:
    """One line per evidence source, kept in the conversation for later human turns."""
    lines = []
    for item in evidence.items:
        if item.result.ok:
            lines.append(f"{item.tool}: ok")
        elif item.result.error is not None:
            lines.append(f"{item.tool}: {item.result.error.kind}: {item.result.error.message}")
    rate = error_rate_of(evidence)
    if rate is not None:
        lines.append(f"error rate: {rate:.1%}")
    return "\n".join(lines)
