"""Log compression for the model: templates with counts, stack traces kept whole, secrets redacted.

Pure functions only: entries in, a JSON-ready dict out. Log text is written by strangers, so
every string that leaves here has been through `redact`.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

# Caps on single strings, so one huge line cannot eat the whole budget.
MAX_EXAMPLE_CHARS = 300
MAX_TEMPLATE_CHARS = 300
MAX_FRAMES = 30  # innermost frames kept per trace (deep recursion repeats the same frames)
# What a trace is cut down to before it is dropped for lack of room.
MIN_FRAMES = 5
MIN_TRACE_TEXT = 300
DEFAULT_MAX_CHARS = 12_000
# Room kept for the "omitted" sentence when trimming to the budget.
_OMITTED_RESERVE = 300

# --- log entries -------------------------------------------------------------------------------


class LogEntry(BaseModel):
    """One line of the load balancer's `/logs/tail` (or several, once continuation lines are merged)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    timestamp: str = ""
    level: str = ""
    message: str = ""
    service: str = ""

    @field_validator("*", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> str:
        # Other log sources send epoch numbers or nulls; text keeps every field comparable.
        return "" if value is None else str(value)


_LEVEL_RANKS = {
    "TRACE": 0,
    "DEBUG": 10,
    "INFO": 20,
    "NOTICE": 25,
    "WARN": 30,
    "WARNING": 30,
    "ERR": 40,
    "ERROR": 40,
    "CRITICAL": 50,
    "CRIT": 50,
    "FATAL": 50,
    "PANIC": 50,
    "ALERT": 50,
    "EMERG": 50,
}
ERROR_RANK = _LEVEL_RANKS["ERROR"]
KNOWN_LEVELS = tuple(_LEVEL_RANKS)


def level_rank(level: str) -> int | None:
    """Severity of a level name (None when unknown), so WARN and WARNING compare equal."""
    return _LEVEL_RANKS.get(level.strip().upper())


def _rank_or_info(level: str) -> int:
    rank = level_rank(level)
    return _LEVEL_RANKS["INFO"] if rank is None else rank


# --- redaction -------------------------------------------------------------------------------

# Any prefix may come before the key (db_password, client_secret): only the value is replaced.
_SECRET_KEY = (
    r"password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?|auth"
)
_CARD = re.compile(r"(?<![\w-])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\w-])")


def _private_key(match: re.Match[str]) -> str:
    # Keep the line count so code windows keep their line numbers.
    return "[REDACTED:private_key]" + "\n" * match.group(0).count("\n")


def _card(match: re.Match[str]) -> str:
    return "[REDACTED:card]" if _luhn_ok(re.sub(r"\D", "", match.group(0))) else match.group(0)


def _luhn_ok(digits: str) -> bool:
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


Replacement = str | Callable[[re.Match[str]], str]

# (trigger, pattern, replacement): a rule runs only when its lower-case trigger is in the text,
# which keeps redaction cheap on the thousands of ordinary lines. Order matters: whole blocks
# and structured tokens before the generic key=value and e-mail rules.
_REDACTIONS: tuple[tuple[str, re.Pattern[str], Replacement], ...] = (
    (
        "private key",
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*)", re.S
        ),
        _private_key,
    ),
    ("eyj", re.compile(r"\beyJ[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]*"), "[REDACTED:jwt]"),
    (
        "authorization",
        re.compile(
            r"(?i)\b(authorization\"?'?\s*[:=]\s*\"?'?(?:(?:bearer|basic|token|digest)\s+)?)[^\s\"',;]+"
        ),
        r"\1[REDACTED]",
    ),
    ("bearer", re.compile(r"(?i)\b(bearer\s+)(?!\[REDACTED)[\w.~+/=-]{8,}"), r"\1[REDACTED]"),
    ("://", re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]+):[^\s@/]+@"), r"\1:[REDACTED]@"),
    (
        "",
        re.compile(rf"(?i)({_SECRET_KEY})\b(\"?'?\s*[:=]\s*\"?'?)(?!\[REDACTED)[^\s\"'&,;)}}\]]+"),
        r"\1\2[REDACTED]",
    ),
    ("", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "[REDACTED:aws_key]"),
    (
        "",
        re.compile(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,}|xox[abprs]-[\w-]{10,}|sk-[\w-]{20,})"
        ),
        "[REDACTED:token]",
    ),
    ("@", re.compile(r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), "[REDACTED:email]"),
    ("", _CARD, _card),
)


def redact(text: str) -> str:
    """Replace secrets (tokens, passwords, keys, e-mails, card numbers) with `[REDACTED...]` markers."""
    lower = text.lower()
    for trigger, pattern, replacement in _REDACTIONS:
        if trigger in lower:
            text = pattern.sub(replacement, text)
    return text


# --- templates -------------------------------------------------------------------------------

_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<ts>"),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<ts>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){3,7}[0-9a-fA-F]{1,4}\b"), "<ip>"),
    (re.compile(r"(?<!\w)'[^'\n]*'"), "'<*>'"),
    (re.compile(r'(?<!\w)"[^"\n]*"'), '"<*>"'),
    (
        re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"),
        "<hex>",
    ),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
)


# HTTP status codes tell a 500 from a 201 of the same endpoint: they are kept, not masked.
_HTTP_STATUS = re.compile(
    r"(?:\b(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) \S+ |HTTP/\d(?:\.\d)?\"? |\bstatus(?:_code)?[=:]\s*\"?)"
    r"(?P<code>[1-5]\d\d)\b"
)


def template_of(text: str) -> str:
    """Mask what varies between occurrences of the same log statement (but not HTTP status codes)."""
    pieces, start = [], 0
    for match in _HTTP_STATUS.finditer(text):
        pieces += [_mask(text[start : match.start("code")]), match["code"]]
        start = match.end("code")
    pieces.append(_mask(text[start:]))
    return _clip("".join(pieces), MAX_TEMPLATE_CHARS)


def _mask(text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- continuation lines ------------------------------------------------------------------------

_PY_TRACEBACK = "Traceback (most recent call last):"
_PY_CHAIN_STARTS = ("During handling of the above exception", "The above exception was the direct cause")
_CONTINUATION_STARTS = ("Caused by:", "Suppressed:", "goroutine ", "created by ", *_PY_CHAIN_STARTS)
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?::\s.*|:?)$")
_GO_FUNCTION_LINE = re.compile(r"^[\w./*()\[\]-]+\(.*\)$")


def _continues(previous: str, line: str) -> bool:
    """Whether `line` belongs to the multi-line event `previous` (a trace logged line by line).

    A multi-line entry is a whole event already, never a continuation.
    """
    if not line or "\n" in line:
        return False
    last = previous.rsplit("\n", 1)[-1]
    if line.startswith(_PY_TRACEBACK):  # after its log line, or the next link of a chain
        return _PY_TRACEBACK not in previous or last.startswith(_PY_CHAIN_STARTS)
    if line[0] in " \t" or line.startswith(_CONTINUATION_STARTS):
        return True
    in_python_trace = _PY_TRACEBACK in previous and last[:1] in (" ", "\t")
    if in_python_trace and _EXCEPTION_LINE.match(line):
        return True  # the exception line that ends a Python traceback is not indented
    return "\ngoroutine " in previous and bool(_GO_FUNCTION_LINE.match(line))


def merge_continuations(entries: Iterable[LogEntry]) -> list[LogEntry]:
    """Join continuation lines (trace frames logged one per entry) to the event they belong to.

    Replicas interleave their lines, so a continuation joins the latest event of its own service.
    Idempotent: merged events start with a line that is not a continuation.
    """
    events: list[LogEntry] = []
    latest_of: dict[str, int] = {}
    for entry in entries:
        at = latest_of.get(entry.service)
        if at is not None and _continues(events[at].message, entry.message):
            events[at] = events[at].model_copy(update={"message": f"{events[at].message}\n{entry.message}"})
            continue
        latest_of[entry.service] = len(events)
        events.append(entry)
    return events


# --- stack traces ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    file: str
    line: int | None
    function: str
    code: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "function": self.function, "code": self.code}


TraceSignature = tuple[str, tuple[tuple[str, int | None, str], ...]]


@dataclass(frozen=True)
class Trace:
    """A parsed stack trace; frames are innermost LAST (Python's order) whatever the language."""

    exception: str
    frames: tuple[Frame, ...]

    @property
    def signature(self) -> TraceSignature:
        # The exception type, not its message: ids in messages must not split a group.
        kind = self.exception.split(":", 1)[0].strip()
        return kind, tuple((f.file, f.line, f.function) for f in self.frames)


_PY_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<function>.+))?$')
_PY_CARETS = re.compile(r"^\s*[~^]+\s*$")
_NODE_FRAME = re.compile(r"^\s+at (?:(?P<function>.+?) \()?(?P<file>[^\s()]+?):(?P<line>\d+):\d+\)?\s*$")
_JAVA_FRAME = re.compile(r"^\s+at (?P<function>[^\s(]+)\((?P<source>[^)]*)\)\s*$")
_GO_FILE_LINE = re.compile(r"^\s+(?P<file>\S+\.go):(?P<line>\d+)(?:\s.*)?$")


def parse_trace(text: str) -> Trace | None:
    """The stack trace in a log event, if any: Python, Java, Node or Go (basic)."""
    lines = text.split("\n")
    if _PY_TRACEBACK in text:
        return _parse_python(lines)
    if any(_GO_FILE_LINE.match(line) for line in lines) and "goroutine " in text:
        return _parse_go(lines)
    if any(_NODE_FRAME.match(line) for line in lines):
        return _parse_at_frames(lines, _NODE_FRAME, _node_frame)
    if any(_JAVA_FRAME.match(line) for line in lines):
        return _parse_at_frames(lines, _JAVA_FRAME, _java_frame)
    return None


def _parse_python(lines: list[str]) -> Trace:
    """The last traceback of a chain: the exception actually raised (the whole chain stays in `text`)."""
    start = max(i for i, line in enumerate(lines) if _PY_TRACEBACK in line)
    frames: list[Frame] = []
    exception = ""
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if match := _PY_FRAME.match(line):
            code = lines[i + 1].strip() if i + 1 < len(lines) else ""
            usable = code and not _PY_FRAME.match(lines[i + 1]) and lines[i + 1][:1] in (" ", "\t")
            frames.append(
                Frame(
                    match["file"],
                    int(match["line"]),
                    match["function"] or "?",
                    _clip(code, MAX_EXAMPLE_CHARS) if usable else None,
                )
            )
        elif line and line[0] not in " \t" and not _PY_CARETS.match(line):
            exception = line.strip()
            break
    return Trace(exception or "(no exception line)", tuple(frames[-MAX_FRAMES:]))


def _node_frame(match: re.Match[str]) -> Frame:
    return Frame(match["file"], int(match["line"]), match["function"] or "<anonymous>")


def _java_frame(match: re.Match[str]) -> Frame:
    source, _, number = match["source"].partition(":")
    return Frame(source, int(number) if number.isdigit() else None, match["function"])


def _parse_at_frames(
    lines: list[str], pattern: re.Pattern[str], to_frame: Callable[[re.Match[str]], Frame]
) -> Trace:
    """Java and Node list the innermost frame first; the thrown exception heads the first block."""
    first = next(i for i, line in enumerate(lines) if pattern.match(line))
    header = next((line for line in reversed(lines[:first]) if line.strip()), "")
    frames: list[Frame] = []
    for line in lines[first:]:
        if line.startswith(("Caused by:", "Suppressed:")) or line.strip().startswith("Caused by:"):
            break  # causes are kept in `text`; frames describe the thrown exception
        if match := pattern.match(line):
            frames.append(to_frame(match))
    exception = re.sub(r'^Exception in thread "[^"]*"\s+', "", header.strip())
    return Trace(exception or "(no exception line)", tuple(reversed(frames[:MAX_FRAMES])))


def _parse_go(lines: list[str]) -> Trace:
    """The first goroutine (the panicking one); Go lists the innermost call first."""
    exception = next((line.strip() for line in lines if line.startswith(("panic:", "fatal error:"))), "")
    frames: list[Frame] = []
    started = False
    for previous, line in itertools.pairwise(lines):
        if line.startswith("goroutine "):
            if started:
                break
            started = True
        elif started and (match := _GO_FILE_LINE.match(line)):
            function = re.sub(r"\([^()]*\)$", "", previous.strip())  # drop the argument list
            frames.append(Frame(match["file"], int(match["line"]), function))
    return Trace(exception or lines[0].strip() or "(no exception line)", tuple(reversed(frames[:MAX_FRAMES])))


_LIBRARY_PATH = re.compile(
    r"site-packages/|dist-packages/|node_modules/|/lib/python\d|^<frozen |^node:|^internal/"
    r"|/usr/local/go/src/|/usr/lib/go|/go/pkg/mod/"
)
_JDK_PREFIXES = ("java.", "javax.", "jdk.", "sun.", "com.sun.", "kotlin.", "scala.")


def is_library_frame(frame: dict[str, Any]) -> bool:
    """Frames of installed packages, the runtime or the JDK, as opposed to the application's own code."""
    file = str(frame.get("file") or "").replace("\\", "/")
    function = str(frame.get("function") or "")
    if _LIBRARY_PATH.search(file) or function.startswith(_JDK_PREFIXES) or function.startswith("runtime."):
        return True
    return file in ("Native Method", "Unknown Source")


def top_frame(result: dict[str, Any]) -> dict[str, Any] | None:
    """The innermost application frame of the most frequent stack trace (that has one) in a result."""
    for trace in result.get("stack_traces", []):
        for frame in reversed(trace.get("frames", [])):
            if not is_library_frame(frame):
                return dict(frame)
    return None


# --- compression -------------------------------------------------------------------------------


@dataclass
class _Template:
    template: str
    level: str
    first_seen: str
    last_seen: str
    example: str
    count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "level": self.level,
            "count": self.count,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "example": self.example,
        }


@dataclass
class _TraceGroup:
    trace: Trace
    text: str
    count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "exception": self.trace.exception,
            "count": self.count,
            "frames": [f.as_dict() for f in self.trace.frames],
            "text": self.text,
        }


@dataclass
class _Digest:
    templates: dict[tuple[str, str], _Template] = field(default_factory=dict)
    traces: dict[TraceSignature, _TraceGroup] = field(default_factory=dict)


def _summary_line(message: str, trace: Trace | None) -> str:
    """What identifies an event: its first line, plus the exception when a trace follows."""
    head = message.split("\n", 1)[0].strip()
    if trace is not None and trace.exception not in head:
        return f"{head} | {trace.exception}" if head else trace.exception
    return head


def _digest(events: Sequence[LogEntry]) -> _Digest:
    digest = _Digest()
    for event in events:
        message = redact(event.message)
        trace = parse_trace(message)
        summary = _summary_line(message, trace)
        level = event.level.strip().upper()
        key = (level, template_of(summary))
        group = digest.templates.get(key)
        if group is None:
            example = summary if trace is not None else message
            group = digest.templates[key] = _Template(
                key[1], level, event.timestamp, event.timestamp, _clip(example, MAX_EXAMPLE_CHARS)
            )
        group.count += 1
        if event.timestamp:
            group.first_seen = min(group.first_seen or event.timestamp, event.timestamp)
            group.last_seen = max(group.last_seen, event.timestamp)
        if trace is not None:
            traced = digest.traces.setdefault(trace.signature, _TraceGroup(trace, message))
            traced.count += 1
    return digest


def compress_logs(entries: Sequence[LogEntry], max_chars: int = DEFAULT_MAX_CHARS) -> dict[str, Any]:
    """The `fetch_logs` result for `entries` (oldest first), at most `max_chars` of JSON.

    Continuation lines are merged first, so `total_lines` counts log events (a trace logged line
    by line counts once). Templates are ranked errors first, then by count; stack traces by count.
    `top_frame` is `top_frame(result)`, precomputed for the diagnoser. When over budget the least
    important templates and traces are left out and `omitted` says so.
    """
    events = merge_continuations(entries)
    digest = _digest(events)
    levels: dict[str, int] = {}
    for event in events:
        name = event.level.strip().upper()
        levels[name] = levels.get(name, 0) + 1
    templates = sorted(
        digest.templates.values(), key=lambda t: (-_rank_or_info(t.level), -t.count, t.first_seen)
    )
    traces = sorted(digest.traces.values(), key=lambda t: -t.count)
    stamps = [e.timestamp for e in events if e.timestamp]
    result: dict[str, Any] = {
        "total_lines": len(events),
        "window": {"first": min(stamps, default=None), "last": max(stamps, default=None)},
        "levels": dict(sorted(levels.items(), key=lambda item: -_rank_or_info(item[0]))),
        "templates": [],
        "stack_traces": [],
        "omitted": None,
    }
    trace_dicts = [t.as_dict() for t in traces]
    # Here and not only as a function: other services read results but may not import this module.
    result["top_frame"] = top_frame({"stack_traces": trace_dicts})
    return _fit(result, [t.as_dict() for t in templates], trace_dicts, max_chars)


def _size(value: Any) -> int:
    return len(json.dumps(value))


def _fit(
    result: dict[str, Any], templates: list[dict[str, Any]], traces: list[dict[str, Any]], max_chars: int
) -> dict[str, Any]:
    """Fill `result` in order of importance while it fits: the top trace, error templates, other
    traces, then the rest; the top trace is shortened rather than dropped."""
    budget = max_chars - _size(result) - _OMITTED_RESERVE
    is_error = [_rank_or_info(t["level"]) >= ERROR_RANK for t in templates]
    ordered: list[tuple[str, int]] = [("trace", 0)] if traces else []
    ordered += [("template", i) for i, error in enumerate(is_error) if error]
    ordered += [("trace", i) for i in range(1, len(traces))]
    ordered += [("template", i) for i, error in enumerate(is_error) if not error]
    kept: dict[str, set[int]] = {"template": set(), "trace": set()}
    items = {"template": templates, "trace": traces}
    for kind, index in ordered:
        item = items[kind][index]
        if kind == "trace" and index == 0:
            item = traces[0] = _shorten_trace(item, budget)
        cost = _size(item) + 2  # ", " between list items
        if cost <= budget:
            kept[kind].add(index)
            budget -= cost
    result["templates"] = [t for i, t in enumerate(templates) if i in kept["template"]]
    result["stack_traces"] = [t for i, t in enumerate(traces) if i in kept["trace"]]
    result["omitted"] = _omitted_note(templates, kept["template"], traces, kept["trace"], max_chars)
    return result


def _shorten_trace(trace: dict[str, Any], budget: int) -> dict[str, Any]:
    """Fit a trace into `budget`: keep its innermost frames, then cut the middle of its text
    (the head says what failed, the end says where)."""
    if _size(trace) <= budget:
        return trace
    trace = {**trace, "frames": trace["frames"][-MIN_FRAMES:]}
    excess = _size(trace) - budget
    if excess <= 0:
        return trace
    text: str = trace["text"]
    # JSON escaping only makes characters longer, so cutting `excess` characters is enough.
    keep = max(len(text) - excess - 60, MIN_TRACE_TEXT)
    if keep >= len(text):
        return trace
    head, tail = text[: keep // 3], text[len(text) - (keep - keep // 3) :]
    cut = len(text) - len(head) - len(tail)
    return {**trace, "text": f"{head}\n…[{cut} characters left out]…\n{tail}"}


def _omitted_note(
    templates: list[dict[str, Any]],
    kept_templates: set[int],
    traces: list[dict[str, Any]],
    kept_traces: set[int],
    max_chars: int,
) -> str | None:
    dropped = [t for i, t in enumerate(templates) if i not in kept_templates]
    dropped_traces = len(traces) - len(kept_traces)
    parts = []
    if dropped:
        lines = sum(t["count"] for t in dropped)
        levels = sorted({t["level"] for t in dropped}, key=lambda name: -_rank_or_info(name))
        parts.append(
            f"{len(dropped)} of {len(templates)} templates ({lines} lines, levels {', '.join(levels)})"
        )
    if dropped_traces:
        parts.append(f"{dropped_traces} of {len(traces)} stack traces")
    if not parts:
        return None
    return (
        f"Left out to stay under {max_chars} characters: {' and '.join(parts)} "
        "(errors and the most frequent lines were kept first)."
    )
