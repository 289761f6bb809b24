"""Rule-based diagnosis from the same evidence the model gets: used with no model configured,
or when the model fails. Known failure classes are explained in plain language with a fix."""

import re
from dataclasses import dataclass

from services.contracts.models import AlertGroup, Diagnosis, Priority
from services.contracts.tool_results import LogsResult, LogTemplate, StackTrace
from services.diagnoser.evidence import Evidence, error_rate_of, latest_commit, top_frame


@dataclass(frozen=True)
class FailureClass:
    name: str
    pattern: re.Pattern[str]
    explanation: str
    fix: str


FAILURE_CLASSES = (
    FailureClass(
        "missing configuration",
        re.compile(
            r"KeyError: '[A-Z][A-Z0-9_]+'|environment variable|missing (config|setting)|not set", re.I
        ),
        "a configuration value or environment variable the code needs is missing",
        "Set the missing setting in the deployment (ConfigMap/Secret) and make the code fail at start-up "
        "with a clear message instead of at request time.",
    ),
    FailureClass(
        "None/null dereference",
        re.compile(
            r"NoneType|NullPointerException|null pointer|nil pointer|Cannot read propert(y|ies) of "
            r"(undefined|null)|undefined is not|NullReferenceException",
            re.I,
        ),
        "the code uses a value that is None/null, typically a lookup that found nothing",
        "Handle the missing value before using it (check for None and return a clear 404/409), "
        "and find out why the lookup found nothing.",
    ),
    FailureClass(
        "missing key",
        re.compile(
            r"KeyError|KeyNotFound|NoSuchElementException|key not found|was not present in the dictionary",
            re.I,
        ),
        "the code reads a key that is not in the map/dict",
        "Use a lookup with a default (dict.get) or validate the input before reading the key.",
    ),
    FailureClass(
        "index out of range",
        re.compile(r"IndexError|index out of range|ArrayIndexOutOfBounds|IndexOutOfRange", re.I),
        "the code reads past the end of a list or array",
        "Check the length before indexing; an empty result is the usual trigger.",
    ),
    FailureClass(
        "timeout",
        re.compile(r"timed? ?out|TimeoutError|deadline exceeded|SocketTimeout", re.I),
        "a call to a dependency takes longer than the configured timeout",
        "Check the dependency's latency and saturation; add a bounded retry with backoff and a circuit "
        "breaker, and make sure timeouts are shorter than the caller's.",
    ),
    FailureClass(
        "connection refused",
        re.compile(r"connection refused|ECONNREFUSED|ConnectException|Connection reset", re.I),
        "a dependency is not accepting connections (down, restarting, or wrong address)",
        "Check that the dependency is up and its address/port in the configuration is right.",
    ),
    FailureClass(
        "out of memory",
        re.compile(r"MemoryError|OutOfMemory|OOMKilled|Cannot allocate memory|heap out of memory", re.I),
        "the process runs out of memory",
        "Raise the memory limit for now, then look for unbounded caches or large payloads held in memory.",
    ),
    FailureClass(
        "disk full",
        re.compile(r"No space left on device|ENOSPC|disk full", re.I),
        "the disk or volume is full",
        "Free or grow the volume and add log/data retention so it does not fill again.",
    ),
    FailureClass(
        "permission denied",
        re.compile(r"Permission denied|EACCES|AccessDenied|403 Forbidden", re.I),
        "the process is not allowed to access a file or resource",
        "Fix the file permissions, the service account's role, or the credentials it uses.",
    ),
)

ERROR_LEVELS = {"ERROR", "CRITICAL", "FATAL", "PANIC", "SEVERE"}


def classify(text: str) -> FailureClass | None:
    return next((fc for fc in FAILURE_CLASSES if fc.pattern.search(text)), None)


def top_error_template(logs: LogsResult | None) -> LogTemplate | None:
    if logs is None:
        return None
    errors = [t for t in logs.templates if t.level.upper() in ERROR_LEVELS]
    return max(errors, key=lambda t: t.count, default=None)


def top_stack_trace(logs: LogsResult | None) -> StackTrace | None:
    if logs is None:
        return None
    return max(logs.stack_traces, key=lambda t: t.count, default=None)


def priority_for(group: AlertGroup, error_rate: float | None) -> Priority:
    severity = (group.common_labels.get("severity") or "").lower()
    if severity in ("critical", "page") and (error_rate is None or error_rate >= 0.2):
        return "P1"
    if severity in ("critical", "page") or (error_rate is not None and error_rate >= 0.05):
        return "P2"
    if severity in ("warning", "warn"):
        return "P3"
    return "P3"


def rule_based_diagnosis(group: AlertGroup, evidence: Evidence) -> Diagnosis:
    logs = evidence.log_result
    trace = top_stack_trace(logs)
    template = top_error_template(logs)
    frame = top_frame(evidence.logs.result)
    error_rate = error_rate_of(evidence)

    signature = (trace.exception if trace else "") or (template.example if template else "")
    failure = classify(signature) if signature else None
    # The repository path the code was found at beats the path inside the container.
    affected_file = _code_path(evidence) or (frame.file if frame else None)
    where = f"{affected_file}:{frame.line}" if frame else None
    function = f" in {frame.function}()" if frame and frame.function else ""

    if signature:
        root_cause = f"{signature.strip()}" + (f" at {where}{function}" if where else "")
        if failure:
            root_cause += f": {failure.explanation}."
    else:
        root_cause = (
            f"{group.title}: no error lines or stack trace in the recent logs; "
            "the cause is probably outside this service (dependency, infrastructure) or not logged."
        )

    evidence_lines: list[str] = []
    if template:
        evidence_lines.append(f"{template.count}× {template.example.strip()[:300]}")
    if trace and trace.exception:
        evidence_lines.append(f"{trace.count}× {trace.exception}")
    code_line = _code_line(evidence)
    if code_line:
        evidence_lines.append(f"{where}: {code_line}")
    if error_rate is not None:
        evidence_lines.append(f"error rate {error_rate:.1%}")

    fix = failure.fix if failure else "Inspect the failing code path and the most recent changes to it."
    if code_line and where:
        fix = f"{fix} Faulty statement at {where}: `{code_line}`"
    commit = latest_commit(evidence)
    if commit:
        change = f"{commit.sha} by {commit.author} on {commit.date or '?'}"
        evidence_lines.append(f"last change to {affected_file}: {change}: {commit.title}")
    next_steps = []
    if where:
        next_steps.append(f"Open {where} and reproduce with the failing input")
    if commit:
        next_steps.append(f"Review commit {commit.sha} ({commit.title}); revert it if it broke this")
    else:
        next_steps.append("Check whether a recent deploy or config change touched this path; roll back if so")
    next_steps.append("Watch the error rate after the fix (reply `status`)")
    return Diagnosis(
        root_cause=root_cause,
        affected_file=affected_file,
        line=frame.line if frame else None,
        evidence=evidence_lines,
        priority=priority_for(group, error_rate),
        suggested_fix=fix,
        next_steps=next_steps,
        confidence=0.7 if frame and failure else 0.5 if signature else 0.2,
        method="rules",
    )


def _code_line(evidence: Evidence) -> str | None:
    """The target line of the code window, or the frame's own code text."""
    window = evidence.code_window
    if window is not None and window.line_text is not None:
        return window.line_text.strip()
    frame = top_frame(evidence.logs.result)
    return frame.code.strip() if frame and frame.code else None


def _code_path(evidence: Evidence) -> str | None:
    window = evidence.code_window
    return (window.path or None) if window is not None else None
