"""Evidence first: logs and error rate in parallel (and what the kind of alert needs beside
them), then the code at the top stack frame."""

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.contracts import tools
from services.contracts.models import AlertGroup, ToolResult
from services.contracts.tool_results import (
    CodeWindow,
    CommitsResult,
    CommitSummary,
    ErrorRateResult,
    LogsResult,
    PrometheusResult,
    StackFrame,
    model_json,
)
from services.diagnoser.ranking import accumulates, alert_expression, alert_kind, measured
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
    # The last minutes' logs, when the alert started before the window around its start ends.
    recent_logs: EvidenceItem | None = None
    # What the alert's own expression measures (latency alerts), over the last half hour.
    alert_query: EvidenceItem | None = None
    # The repository's recent commits (latency alerts: a migration, a dropped index).
    changes: EvidenceItem | None = None
    # The stack frame whose code was fetched (the failing frame, or the first caller found).
    frame: StackFrame | None = None
    investigated_at: datetime | None = None
    # Incident memory (memory.py): the earlier diagnoses of the same problem, for the model.
    memory: str | None = None

    @property
    def items(self) -> list[EvidenceItem]:
        found = (
            self.logs,
            self.error_rate,
            self.recent_logs,
            self.alert_query,
            self.code,
            self.commits,
            self.changes,
        )
        return [item for item in found if item is not None]

    @property
    def log_result(self) -> LogsResult | None:
        return self.logs.result.output(LogsResult)

    @property
    def recent_log_result(self) -> LogsResult | None:
        return self.recent_logs.result.output(LogsResult) if self.recent_logs is not None else None

    @property
    def code_window(self) -> CodeWindow | None:
        return self.code.result.output(CodeWindow) if self.code is not None else None

    @property
    def alert_series(self) -> PrometheusResult | None:
        return self.alert_query.result.output(PrometheusResult) if self.alert_query is not None else None

    @property
    def recent_changes(self) -> CommitsResult | None:
        return self.changes.result.output(CommitsResult) if self.changes is not None else None

    @property
    def failing_frame(self) -> StackFrame | None:
        """The frame the code is for, else the innermost application frame of the logs."""
        return self.frame or top_frame(self.logs.result)


def top_frame(logs: ToolResult) -> StackFrame | None:
    """The innermost application frame of the most frequent stack trace, as found by fetch_logs."""
    result = logs.output(LogsResult)
    frame = result.top_frame if result is not None else None
    return frame if frame is not None and frame.lookup_path else None


def frames_to_try(logs: ToolResult) -> list[StackFrame]:
    """The failing frame, then its callers: the code of the first one found in the repository."""
    result = logs.output(LogsResult)
    if result is None:
        return []
    frames = result.code_frames or ([result.top_frame] if result.top_frame is not None else [])
    return [frame for frame in frames if frame.lookup_path]


# Logs are read `LOG_SECONDS` either side of the alert's start; an alert older than that (and
# younger than RECENT_MAX_AGE) also gets the last `LOG_SECONDS`: has it stopped? (Older still,
# a replay: fetch_logs answers the recent lines itself when the sources keep none that old.)
LOG_SECONDS = 300
RECENT_MAX_AGE = timedelta(hours=6)
ALERT_QUERY_MINUTES = 30
CHANGES_LOOKBACK = timedelta(days=2)
# How long before an accumulating alert (consumer lag, backlog) its cause may have begun.
ACCUMULATION_LEAD = timedelta(minutes=10)


def recent_window_needed(started: datetime | None, now: datetime) -> bool:
    if started is None:
        return False
    age = now - started
    return timedelta(seconds=LOG_SECONDS + 60) < age <= RECENT_MAX_AGE


async def gather_evidence(
    caller: ToolCaller, group: AlertGroup, incident_id: str, now: datetime | None = None
) -> Evidence:
    """Logs (around the alert's start, narrowed by its labels) and the error rate in parallel,
    with, for an old alert, the last minutes' logs and, for a latency alert, its own query and
    the repository's recent changes; then, for the top stack frame, its code and the recent
    commits touching it, in parallel (a caller's frame when the failing file is not in the
    repository)."""
    now = now or datetime.now(UTC)
    service = group.service
    logs_args: dict[str, Any] = {"service": service, "labels": group.common_labels}
    started = group.earliest_start()
    if started is not None and accumulates(group):
        # What is new is measured from before the lag began to grow, and the window still
        # reaches the alert's start.
        logs_args["starts_at"] = (started - ACCUMULATION_LEAD).isoformat()
        logs_args["seconds"] = LOG_SECONDS + int(ACCUMULATION_LEAD.total_seconds())
    elif started is not None:
        logs_args["starts_at"] = started.isoformat()
    rate_args: dict[str, Any] = {"service": service}
    side = side_calls(group, now)
    rate_call = asyncio.ensure_future(caller.call(tools.COMPUTE_ERROR_RATE.name, rate_args, incident_id))
    side_calls_ = [
        asyncio.ensure_future(caller.call(tool, args, incident_id)) for tool, args in side.values()
    ]
    logs = await caller.call(tools.FETCH_LOGS.name, logs_args, incident_id)
    # The code and its history depend only on the logs: ask for them while the rest is on its way.
    located = await locate_code(caller, frames_to_try(logs), incident_id)
    rate, *side_results = await asyncio.gather(rate_call, *side_calls_)
    evidence = Evidence(
        logs=EvidenceItem(tools.FETCH_LOGS.name, logs_args, logs),
        error_rate=EvidenceItem(tools.COMPUTE_ERROR_RATE.name, rate_args, rate),
        code=None,
        investigated_at=now,
    )
    for (name, (tool, args)), result in zip(side.items(), side_results, strict=True):
        setattr(evidence, name, EvidenceItem(tool, args, result))
    if located is not None:
        evidence.code, evidence.commits, evidence.frame = located
    return evidence


def side_calls(group: AlertGroup, now: datetime) -> dict[str, tuple[str, dict[str, Any]]]:
    """The calls beside logs and error rate this alert needs, by the Evidence field they fill."""
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    if recent_window_needed(group.earliest_start(), now):
        recent = {"service": group.service, "labels": group.common_labels, "seconds": LOG_SECONDS}
        calls["recent_logs"] = (tools.FETCH_LOGS.name, recent)
    kind = alert_kind(group)
    if kind == "latency":
        expression = alert_expression(group)
        query = measured(expression) if expression else None
        if query:
            args = {"query": query, "range_minutes": ALERT_QUERY_MINUTES}
            calls["alert_query"] = (tools.QUERY_PROMETHEUS.name, args)
    if kind in ("latency", "restarts"):
        # A migration (latency) or a deployment change (crash loops) of the last days.
        since = (now - CHANGES_LOOKBACK).isoformat()
        calls["changes"] = (tools.RECENT_COMMITS.name, {"since": since, "limit": 5})
    return calls


Located = tuple[EvidenceItem, EvidenceItem, StackFrame]


async def locate_code(caller: ToolCaller, frames: list[StackFrame], incident_id: str) -> Located | None:
    """The code and the recent commits of the first frame whose file is in the repository (the
    failing frame; if its file is not there, a library's or generated one, its caller), each
    pair asked in parallel. The failing frame's answers when no file is found; None without
    frames."""
    first: Located | None = None
    for frame in frames:
        located = await code_and_history(caller, frame, incident_id)
        first = first or located
        code = located[0].result
        if code.output(CodeWindow) is not None or code.error is None or code.error.kind != "not_found":
            return located if code.output(CodeWindow) is not None else first
    return first


async def code_and_history(caller: ToolCaller, frame: StackFrame, incident_id: str) -> Located:
    code_args: dict[str, Any] = {"file_path": frame.lookup_path, "line": frame.line}
    commits_args: dict[str, Any] = {"path": frame.lookup_path, "limit": 5}
    code, commits = await asyncio.gather(
        caller.call(tools.FETCH_CODE.name, code_args, incident_id),
        caller.call(tools.RECENT_COMMITS.name, commits_args, incident_id),
    )
    window, history = code.output(CodeWindow), commits.output(CommitsResult)
    if (
        window is not None
        and history is not None
        and not history.commits
        and history.path not in (None, window.path)
    ):
        # The file was found by its name, elsewhere than the frame said: its own history.
        commits_args = {"path": window.path, "limit": 5}
        commits = await caller.call(tools.RECENT_COMMITS.name, commits_args, incident_id)
    return (
        EvidenceItem(tools.FETCH_CODE.name, code_args, code),
        EvidenceItem(tools.RECENT_COMMITS.name, commits_args, commits),
        frame,
    )


def latest_commit(evidence: Evidence) -> CommitSummary | None:
    """The newest commit that touched the failing file, when the history could be read."""
    history = evidence.commits.result.output(CommitsResult) if evidence.commits is not None else None
    return history.commits[0] if history is not None and history.commits else None


def result_for_model(result: ToolResult, max_chars: int) -> str:
    """A tool result as the model reads it (its compact rendering, or the error), capped in size."""
    text = model_json(result.for_model())
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
