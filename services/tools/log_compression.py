"""Log compression for the model: templates with counts, ranked by level and novelty, stack
traces kept whole, secrets redacted, the whole fitted to a token budget (tokens.py).

Pure functions only: entries in, a `LogsResult` (contracts/tool_results.py) out. Log text is
written by strangers, so every string that leaves here has been through `redact` (redaction.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from services.contracts.tool_results import LogsResult, LogTemplate, LogWindow, StackTrace
from services.runtime.text import clip
from services.tools.redaction import redact
from services.tools.stack_traces import Trace, TraceSignature, continues, parse_trace, top_frame
from services.tools.times import parse_timestamp
from services.tools.tokens import estimate_tokens

# Caps on single strings, so one huge line cannot eat the whole budget.
MAX_EXAMPLE_CHARS = 300
MAX_TEMPLATE_CHARS = 300
# What a trace is cut down to before it is dropped for lack of room.
MIN_FRAMES = 5
MIN_TRACE_TEXT = 300
DEFAULT_MAX_TOKENS = 2_000
# Room kept for the "omitted" sentence when trimming to the budget.
_OMITTED_RESERVE_TOKENS = 80

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
    return clip("".join(pieces), MAX_TEMPLATE_CHARS)


# The masks as one alternation, in their order: one scan of the line instead of one per mask.
_MASK = re.compile("|".join(f"({pattern.pattern})" for pattern, _ in _MASKS))
_MASK_REPLACEMENTS = tuple(replacement for _, replacement in _MASKS)


def _mask(text: str) -> str:
    return _MASK.sub(lambda match: _MASK_REPLACEMENTS[(match.lastindex or 1) - 1], text)


# --- continuation lines ------------------------------------------------------------------------


def merge_continuations(entries: Iterable[LogEntry]) -> list[LogEntry]:
    """Join continuation lines (trace frames logged one per entry) to the event they belong to.

    Replicas interleave their lines, so a continuation joins the latest event of its own service.
    Idempotent: merged events start with a line that is not a continuation.
    """
    events: list[LogEntry] = []
    latest_of: dict[str, int] = {}
    for entry in entries:
        at = latest_of.get(entry.service)
        if at is not None and continues(events[at].message, entry.message):
            events[at] = events[at].model_copy(update={"message": f"{events[at].message}\n{entry.message}"})
            continue
        latest_of[entry.service] = len(events)
        events.append(entry)
    return events


# --- compression -------------------------------------------------------------------------------


@dataclass
class _Template:
    template: str
    level: str
    first_seen: str
    last_seen: str
    example: str
    count: int = 0

    def result(self, alert_start: datetime | None) -> LogTemplate:
        return LogTemplate(
            template=self.template,
            level=self.level,
            count=self.count,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            example=self.example,
            new=None if alert_start is None else is_new(self.first_seen, alert_start),
        )


@dataclass
class _TraceGroup:
    trace: Trace
    text: str
    first_seen: str
    count: int = 0

    def result(self, alert_start: datetime | None) -> StackTrace:
        return StackTrace(
            exception=self.trace.exception,
            count=self.count,
            first_seen=self.first_seen,
            frames=list(self.trace.frames),
            text=self.text,
            new=None if alert_start is None else is_new(self.first_seen, alert_start),
        )


@dataclass
class _Digest:
    templates: dict[tuple[str, str], _Template] = field(default_factory=dict)
    traces: dict[TraceSignature, _TraceGroup] = field(default_factory=dict)


def is_new(first_seen: str, alert_start: datetime) -> bool:
    """Not seen before the alert started: what changed is where the cause usually is."""
    seen = parse_timestamp(first_seen)
    return seen is not None and seen >= alert_start


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
                key[1], level, event.timestamp, event.timestamp, clip(example, MAX_EXAMPLE_CHARS)
            )
        group.count += 1
        if event.timestamp:
            group.first_seen = min(group.first_seen or event.timestamp, event.timestamp)
            group.last_seen = max(group.last_seen, event.timestamp)
        if trace is not None:
            traced = digest.traces.setdefault(trace.signature, _TraceGroup(trace, message, event.timestamp))
            traced.count += 1
    return digest


def _rank_key(item: LogTemplate) -> tuple[int, bool, int, str]:
    """Worst level first; within a level what is new since the alert, then the most frequent."""
    return (-_rank_or_info(item.level), not item.new, -item.count, item.first_seen)


def compress_logs(
    entries: Sequence[LogEntry],
    max_tokens: int = DEFAULT_MAX_TOKENS,
    alert_start: datetime | None = None,
    reserved_tokens: int = 0,
) -> LogsResult:
    """The `fetch_logs` result for `entries` (oldest first), at most `max_tokens` of JSON (as the
    model reads it) once the caller has added what it `reserved_tokens` for (fetch_logs' `query`).

    Continuation lines are merged first, so `total_lines` counts log events (a trace logged line
    by line counts once). Templates are ranked by level, then novelty (`new`: first seen at or
    after `alert_start`, when given), then count; stack traces new first, then by count.
    `top_frame` is `top_frame(stack traces)`, precomputed for the diagnoser. When over budget the least
    important templates and traces are left out and `omitted` says so.
    """
    events = merge_continuations(entries)
    digest = _digest(events)
    levels: dict[str, int] = {}
    for event in events:
        name = event.level.strip().upper()
        levels[name] = levels.get(name, 0) + 1
    templates = sorted((t.result(alert_start) for t in digest.templates.values()), key=_rank_key)
    traces = sorted(
        (t.result(alert_start) for t in digest.traces.values()), key=lambda t: (not t.new, -t.count)
    )
    stamps = [e.timestamp for e in events if e.timestamp]
    result = LogsResult(
        total_lines=len(events),
        window=LogWindow(first=min(stamps, default=None), last=max(stamps, default=None)),
        levels=dict(sorted(levels.items(), key=lambda item: -_rank_or_info(item[0]))),
        # Here and not only as a function: other services read results but may not import this module.
        top_frame=top_frame(traces),
    )
    day = _one_day(result.window.first, result.window.last)
    templates = [t.model_copy(update=_clock_times(t.first_seen, t.last_seen, day)) for t in templates]
    traces = [t.model_copy(update=_clock_times(t.first_seen, None, day)) for t in traces]
    return _fit(result, templates, traces, max_tokens, reserved_tokens)


def _one_day(first: str | None, last: str | None) -> date | None:
    """The UTC day the whole window falls in, if it does."""
    start, end = parse_timestamp(first or ""), parse_timestamp(last or "")
    if start is None or end is None or start.astimezone(UTC).date() != end.astimezone(UTC).date():
        return None
    return start.astimezone(UTC).date()


def _clock_times(first_seen: str, last_seen: str | None, day: date | None) -> dict[str, str]:
    """`first_seen`/`last_seen` as HH:MM:SS (UTC) when the window is one day, which `window`
    states in full: a third of the tokens of a full timestamp, on every template."""
    if day is None:
        return {}
    times = {"first_seen": _clock(first_seen, day)}
    if last_seen is not None:
        times["last_seen"] = _clock(last_seen, day)
    return times


def _clock(stamp: str, day: date) -> str:
    moment = parse_timestamp(stamp)
    if moment is None or moment.astimezone(UTC).date() != day:
        return stamp
    return moment.astimezone(UTC).strftime("%H:%M:%S")


def size_in_tokens(value: Any) -> int:
    """What `value` costs in the model's context, as the JSON it is sent as: a tool result (or a
    part of one) as its `for_model()` rendering."""
    return estimate_tokens(json.dumps(value, ensure_ascii=False, default=_for_model))


def _for_model(value: Any) -> Any:
    if isinstance(value, BaseModel) and hasattr(value, "for_model"):
        return value.for_model()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _fit(
    result: LogsResult,
    templates: list[LogTemplate],
    traces: list[StackTrace],
    max_tokens: int,
    reserved_tokens: int,
) -> LogsResult:
    """Fill `result` in order of importance while it fits: the top trace, error templates, other
    traces, then the rest; the top trace is shortened rather than dropped, and nothing of a rank
    gets in while something of a higher rank was left out.

    Each item is measured once, and the whole as the sum of its parts: joined JSON never costs
    more tokens than its parts apart (pieces only merge at the seams). The top trace gets at most
    half of the room, so that a long trace cannot push out every error template.
    """
    frame = size_in_tokens(result) + reserved_tokens  # the result with empty lists and no note
    is_error = [_rank_or_info(t.level) >= ERROR_RANK for t in templates]
    phases: list[list[tuple[str, int]]] = [
        [("trace", 0)] if traces else [],
        [("template", i) for i, error in enumerate(is_error) if error],
        [("trace", i) for i in range(1, len(traces))],
        [("template", i) for i, error in enumerate(is_error) if not error],
    ]
    items: dict[str, list[LogTemplate] | list[StackTrace]] = {"template": templates, "trace": traces}
    budget = max_tokens - frame - _OMITTED_RESERVE_TOKENS
    kept: list[tuple[str, int, int]] = []  # kind, index, cost
    for phase in phases:
        complete = True
        for kind, index in phase:
            if kind == "trace" and index == 0:
                traces[0] = _shorten_trace(traces[0], budget // 2)  # half: room for the error templates
            cost = size_in_tokens(items[kind][index]) + 1  # the ", " between list items
            if cost <= budget:
                kept.append((kind, index, cost))
                budget -= cost
            else:
                complete = False  # a shorter item of the same rank may still fit
        if not complete:
            break  # nothing of a lower rank while something of this one is left out
    while True:
        chosen = {kind: {i for k, i, _ in kept if k == kind} for kind in items}
        note = _omitted_note(templates, chosen["template"], traces, chosen["trace"], max_tokens)
        if not kept or frame + size_in_tokens(note) + sum(cost for *_, cost in kept) <= max_tokens:
            break
        kept.pop()  # a note longer than its reserve: make room for it
    result.templates = [t for i, t in enumerate(templates) if i in chosen["template"]]
    result.stack_traces = [t for i, t in enumerate(traces) if i in chosen["trace"]]
    result.omitted = note
    return result


def _shorten_trace(trace: StackTrace, budget: int) -> StackTrace:
    """Fit a trace into `budget` tokens: keep its innermost frames, then cut the middle of its
    text (the head says what failed, the end says where)."""
    if size_in_tokens(trace) <= budget:
        return trace
    trace = trace.model_copy(update={"frames": trace.frames[-MIN_FRAMES:]})
    text = trace.text
    keep = len(text)
    while (size := size_in_tokens(trace)) > budget and keep > MIN_TRACE_TEXT:
        # A token is at least one character: cut a quarter more characters than tokens over.
        excess = size - budget
        keep = max(min(keep - excess - excess // 4 - 60, int(keep * 0.9)), MIN_TRACE_TEXT)
        head, tail = text[: keep // 3], text[len(text) - (keep - keep // 3) :]
        cut = len(text) - len(head) - len(tail)
        trace = trace.model_copy(update={"text": f"{head}\n…[{cut} characters left out]…\n{tail}"})
    return trace


def _omitted_note(
    templates: list[LogTemplate],
    kept_templates: set[int],
    traces: list[StackTrace],
    kept_traces: set[int],
    max_tokens: int,
) -> str | None:
    dropped = [t for i, t in enumerate(templates) if i not in kept_templates]
    dropped_traces = len(traces) - len(kept_traces)
    parts = []
    if dropped:
        lines = sum(t.count for t in dropped)
        levels = sorted({t.level for t in dropped}, key=lambda name: -_rank_or_info(name))
        parts.append(
            f"{len(dropped)} of {len(templates)} templates ({lines} lines, levels {', '.join(levels)})"
        )
    if dropped_traces:
        parts.append(f"{dropped_traces} of {len(traces)} stack traces")
    if not parts:
        return None
    return (
        f"Left out to stay under {max_tokens} tokens: {' and '.join(parts)} "
        "(errors, new and frequent lines were kept first; ask with level=ERROR or a narrower service)."
    )
