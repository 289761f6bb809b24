"""Rule-based diagnosis from the same evidence the model gets: used with no model configured,
or when the model fails. Known failure classes are explained in plain language with a fix."""

import re
from dataclasses import dataclass
from typing import Any

from services.contracts.models import AlertGroup, Diagnosis, Priority
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


def top_error_template(logs_data: Any) -> dict[str, Any] | None:
    if not isinstance(logs_data, dict):
        return None
    templates = [t for t in logs_data.get("templates", []) if isinstance(t, dict)]
    errors = [t for t in templates if str(t.get("level", "")).upper() in ERROR_LEVELS]
    return max(errors, key=lambda t: t.get("count", 0), default=None)


def top_stack_trace(logs_data: Any) -> dict[str, Any] | None:
    if not isinstance(logs_data, dict):
        return None
    traces = [t for t in logs_data.get("stack_traces", []) if isinstance(t, dict)]
    return max(traces, key=lambda t: t.get("count", 0), default=None)


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
    logs_data = evidence.logs.result.data if evidence.logs.result.ok else None
    trace = top_stack_trace(logs_data)
    template = top_error_template(logs_data)
    frame = top_frame(evidence.logs.result)
    error_rate = error_rate_of(evidence)

    signature = (trace or {}).get("exception") or (template or {}).get("example") or ""
    failure = classify(signature) if signature else None
    # The repository path the code was found at beats the path inside the container.
    affected_file = _code_path(evidence) or (frame["file"] if frame else None)
    where = f"{affected_file}:{frame.get('line')}" if frame else None
    function = f" in {frame['function']}()" if frame and frame.get("function") else ""

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
        evidence_lines.append(f"{template.get('count', 1)}× {str(template.get('example', '')).strip()[:300]}")
    if trace and trace.get("exception"):
        evidence_lines.append(f"{trace.get('count', 1)}× {trace['exception']}")
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
        change = f"{commit.get('sha', '')} by {commit.get('author', '?')} on {commit.get('date', '?')}"
        evidence_lines.append(f"last change to {affected_file}: {change}: {commit.get('title', '')}")
    next_steps = []
    if where:
        next_steps.append(f"Open {where} and reproduce with the failing input")
    if commit:
        next_steps.append(
            f"Review commit {commit.get('sha', '')} ({commit.get('title', '')}); revert it if it broke this"
        )
    else:
        next_steps.append("Check whether a recent deploy or config change touched this path; roll back if so")
    next_steps.append("Watch the error rate after the fix (reply `status`)")
    return Diagnosis(
        root_cause=root_cause,
        affected_file=affected_file,
        line=_int_or_none(frame.get("line")) if frame else None,
        evidence=evidence_lines,
        priority=priority_for(group, error_rate),
        suggested_fix=fix,
        next_steps=next_steps,
        confidence=0.7 if frame and failure else 0.5 if signature else 0.2,
        method="rules",
    )


def _code_line(evidence: Evidence) -> str | None:
    """The marked line of the code window (`> 47 | ...`), or the frame's own code text."""
    if evidence.code is not None and evidence.code.result.ok and isinstance(evidence.code.result.data, dict):
        for line in str(evidence.code.result.data.get("code", "")).splitlines():
            if line.startswith(">"):
                return line.split("|", 1)[-1].strip()
    frame = top_frame(evidence.logs.result)
    code = frame.get("code") if frame else None
    return str(code).strip() if code else None


def _code_path(evidence: Evidence) -> str | None:
    if evidence.code is not None and evidence.code.result.ok and isinstance(evidence.code.result.data, dict):
        path = evidence.code.result.data.get("path")
        return str(path) if path else None
    return None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
